import random

import numpy as np
import pytest
import torch
from reference import encoder_flops_reference, param_count_reference
from transformers import BertConfig, BertForMaskedLM, BertModel

from bortfast import Arch, SearchSpace, encoder_flops, param_counts


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tiny_archs(n: int, seed: int = 0) -> list[Arch]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        heads = rng.choice([1, 2, 3, 4])
        out.append(Arch(rng.randint(1, 3), heads, heads * rng.choice([4, 8, 12]), rng.randint(1, 64),
                        vocab_size=rng.randint(5, 120), max_positions=rng.randint(8, 64),
                        type_vocab_size=rng.randint(1, 3)))
    return out


def test_bert_paper_space_has_300_valid_archs():
    space = SearchSpace.bert_paper()
    archs = space.archs()
    assert len(archs) == 300 == len(space)
    assert len(set(archs)) == 300
    assert all(a.hidden % a.heads == 0 for a in archs)
    assert Arch(4, 8, 1024, 768) in archs  # Bort
    assert space.as_array().shape == (300, 4)
    assert space.maximum == Arch(12, 16, 1024, 3072)


@pytest.mark.parametrize(
    ("arch", "kind", "expected"),
    [
        (Arch(12, 12, 768, 3072), "encoder+pooler", 109_482_240),  # bert-base-uncased BertModel
        (Arch(24, 16, 1024, 4096), "encoder+pooler", 335_141_888),  # bert-large-uncased BertModel
    ],
)
def test_known_bert_param_counts(arch, kind, expected):
    assert arch.param_count(kind) == expected


@pytest.mark.slow
@pytest.mark.parametrize("arch", [Arch(12, 12, 768, 3072), Arch(24, 16, 1024, 4096), Arch(4, 8, 1024, 768)],
                         ids=str)
def test_param_count_matches_transformers_full_size(arch):
    config = arch.to_bert_config()
    with torch.device("meta"):  # shapes only: no memory for BERT-large
        assert arch.param_count("encoder+pooler") == n_params(BertModel(config))
        assert arch.param_count("encoder") == n_params(BertModel(config, add_pooling_layer=False))
        assert arch.param_count("masked-lm") == n_params(BertForMaskedLM(config))


def test_param_count_matches_transformers_on_random_tiny_configs():
    for arch in tiny_archs(24):
        config = arch.to_bert_config()
        assert arch.param_count("encoder+pooler") == n_params(BertModel(config)), arch
        assert arch.param_count("encoder") == n_params(BertModel(config, add_pooling_layer=False)), arch
        assert arch.param_count("masked-lm") == n_params(BertForMaskedLM(config)), arch
        for kind in ("encoder", "encoder+pooler", "masked-lm"):
            assert arch.param_count(kind) == param_count_reference(*arch.tuple, arch.vocab_size,
                                                                   arch.max_positions, arch.type_vocab_size,
                                                                   kind)


def test_flops_match_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    for arch in tiny_archs(6, seed=1):
        model = BertModel(arch.to_bert_config(attn_implementation="eager"), add_pooling_layer=False).eval()
        for batch, seq_len in [(1, 7), (3, 5)]:
            hidden = torch.randn(batch, seq_len, arch.hidden)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                model.encoder(hidden)
            assert arch.flops(batch, seq_len) == counter.get_total_flops(), (arch, batch, seq_len)


def test_vectorised_cost_model_equals_reference():
    rng = np.random.default_rng(0)
    heads = rng.integers(1, 17, size=500)
    archs = np.stack([rng.integers(1, 49, 500), heads, heads * rng.integers(1, 129, 500),
                      rng.integers(1, 8193, 500)], axis=1).astype(np.int64)
    params = param_counts(archs, "masked-lm")
    flops = encoder_flops(archs, 8, 128)
    for row, p, f in zip(archs.tolist(), params, flops):
        assert p == param_count_reference(*row, kind="masked-lm")
        assert f == encoder_flops_reference(*row, 8, 128)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layers=4, heads=7, hidden=1024, intermediate=768), "hidden=1024 is not divisible by heads=7"),
        (dict(layers=0, heads=8, hidden=1024, intermediate=768), "layers must be positive, got 0"),
        (dict(layers=4, heads=8, hidden=-8, intermediate=768), "hidden must be positive, got -8"),
        (dict(layers=4, heads=8, hidden=1024, intermediate=0), "intermediate must be positive, got 0"),
        (dict(layers=4, heads=8, hidden=1024, intermediate=768, vocab_size=0), "vocab_size must be positive"),
    ],
)
def test_invalid_arch_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Arch(**kwargs)


def test_non_int_arch_rejected():
    with pytest.raises(TypeError, match="layers must be an int, got 4.0"):
        Arch(4.0, 8, 1024, 768)


def test_core_rejects_bad_arrays():
    from bortfast import _core

    good = np.array([[4, 8, 1024, 768]], dtype=np.int64)
    assert _core.encoder_flops(good, 1, 128)[0] == Arch(4, 8, 1024, 768).flops()
    with pytest.raises(TypeError, match="archs must have dtype int64, got int32"):
        _core.encoder_flops(good.astype(np.int32), 1, 128)
    with pytest.raises(ValueError, match=r"shape \(n, 4\).*got \(1, 3\)"):
        _core.encoder_flops(good[:, :3].copy(), 1, 128)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.encoder_flops(np.asfortranarray(np.repeat(good, 3, axis=0)), 1, 128)
    with pytest.raises(ValueError, match=r"row 1: \(layers=4, heads=3, hidden=1024"):
        _core.param_counts(np.array([[4, 8, 1024, 768], [4, 3, 1024, 768]], dtype=np.int64), 10, 10, 2,
                           "encoder")
    with pytest.raises(ValueError, match="batch must be positive, got 0"):
        _core.encoder_flops(good, 0, 128)
    with pytest.raises(ValueError, match="model kind must be"):
        _core.param_counts(good, 10, 10, 2, "decoder")
    with pytest.raises(OverflowError, match="overflows int64"):
        _core.encoder_flops(np.array([[2**40, 1, 2**20, 2**20]], dtype=np.int64), 1, 128)
    assert _core.param_counts(np.zeros((0, 4), dtype=np.int64), 10, 10, 2, "encoder").shape == (0,)


def test_arch_parse_and_config_roundtrip():
    arch = Arch.parse("4,8,1024,768")
    assert arch == Arch(4, 8, 1024, 768)
    assert Arch.from_config(arch.to_bert_config()) == arch
    with pytest.raises(ValueError, match="4 integers"):
        Arch.parse("4,8,1024")
    with pytest.raises(ValueError, match="layers,heads,hidden,intermediate"):
        Arch.parse("a,b,c,d")


def test_space_below_teacher_has_teacher_as_maximum():
    teachers = [Arch(6, 12, 384, 1536, vocab_size=30522), Arch(24, 16, 1024, 4096), Arch(2, 4, 32, 37, 99)]
    for teacher in teachers:
        config = BertConfig(**teacher.to_bert_config().to_dict())
        space = SearchSpace.below(config)
        assert space.maximum == teacher
        assert teacher in space.archs()
        assert all(a.vocab_size == teacher.vocab_size for a in space)
        assert all(a.layers <= teacher.layers and a.hidden <= teacher.hidden for a in space)
        assert len(space) >= 20


def test_space_rejects_empty_and_invalid_lists():
    with pytest.raises(ValueError, match="SearchSpace.layers is empty"):
        SearchSpace(layers=(), heads=(4,), hidden=(512,), intermediate=(256,))
    with pytest.raises(ValueError, match="no valid architecture"):
        SearchSpace(layers=(2,), heads=(7,), hidden=(512,), intermediate=(256,))
    with pytest.raises(ValueError, match=r"positive ints, got -1"):
        SearchSpace(layers=(-1,), heads=(4,), hidden=(512,), intermediate=(256,))
