"""Weight inheritance: students cut out of the teacher (bortfast.inherit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import tiny_bert
from transformers import BertForMaskedLM, BertModel

from bortfast import Arch, SearchSpace
from bortfast.distill.inherit import Importance, choose_layers, compute_importance, inherit_student, plan_heads


def _teacher(layers=3, heads=4, hidden=32, inter=48, seed=0, cls=BertForMaskedLM):
    return tiny_bert(cls, seed=seed, vocab_size=60, hidden=hidden, layers=layers, heads=heads, intermediate=inter,
                     max_positions=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).eval()


def _ids(n=6, length=12, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 60, (n, length), generator=g)


def _importance(model):
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[0, 8:] = 0  # padded positions must not count
    return compute_importance(model, [(ids[:3], mask[:3]), (ids[3:], mask[3:])])


def _arch_of(model):
    return Arch.from_config(model.config)


def test_student_equal_to_teacher_reproduces_it_exactly():
    teacher = _teacher()
    imp = _importance(teacher)
    student = inherit_student(_arch_of(teacher), teacher, imp).eval()
    ids = _ids(seed=3)
    with torch.no_grad():
        torch.testing.assert_close(student(input_ids=ids).logits, teacher(input_ids=ids).logits, rtol=0, atol=0)


@pytest.mark.parametrize("rule", ["first", "even", "importance", [0, 2]])
def test_depth_only_student_equals_the_kept_teacher_layers(rule):
    teacher = _teacher(cls=BertModel)
    imp = _importance(teacher)
    arch = Arch(2, 4, 32, 48, vocab_size=60, max_positions=40)
    student = inherit_student(arch, teacher, imp, layers=rule, model_class="BertModel").eval()
    kept = choose_layers(rule, 2, imp)
    assert student.config.bortfast_inherit["teacher_layers"] == kept
    ids = _ids(seed=4)
    with torch.no_grad():
        h = teacher.embeddings(input_ids=ids)
        for li in kept:
            out = teacher.encoder.layer[li](h)
            h = out[0] if isinstance(out, tuple) else out
        torch.testing.assert_close(student(input_ids=ids).last_hidden_state, h, rtol=1e-5, atol=1e-5)


def test_every_arch_below_a_tiny_teacher_inherits_with_exact_param_count():
    teacher = _teacher(layers=2, heads=4, hidden=32, inter=48)
    imp = _importance(teacher)
    space = SearchSpace.below(teacher.config)
    assert len(space.archs()) > 10
    ids = _ids(n=2)
    for arch in space.archs():
        student = inherit_student(arch, teacher, imp)
        assert sum(p.numel() for p in student.parameters()) == arch.param_count("masked-lm"), arch
        with torch.no_grad():
            assert torch.isfinite(student(input_ids=ids).logits).all(), arch


def test_inherited_beats_random_on_teacher_agreement():
    teacher = _teacher(layers=3, hidden=32, inter=48, cls=BertModel)
    imp = _importance(teacher)
    arch = Arch(2, 4, 24, 32, vocab_size=60, max_positions=40)
    ids = _ids(seed=5)
    with torch.no_grad():
        target = teacher(input_ids=ids).last_hidden_state
        inh = inherit_student(arch, teacher, imp, model_class="BertModel").eval()
        keep = torch.as_tensor(np.sort(np.argsort(-imp.hidden)[:24]))
        cos_inh = torch.cosine_similarity(inh(input_ids=ids).last_hidden_state, target[..., keep], dim=-1).mean()
        torch.manual_seed(0)
        rnd = BertModel(inh.config).eval()
        cos_rnd = torch.cosine_similarity(rnd(input_ids=ids).last_hidden_state, target[..., keep], dim=-1).mean()
    assert cos_inh > cos_rnd + 0.2, (cos_inh, cos_rnd)


def test_head_plan_keeps_temperature_for_smaller_and_larger_heads():
    heads = np.array([0.1, 0.9, 0.5, 0.3])
    dims = np.arange(32, dtype=float)
    small = plan_heads(4, 16, 4, 32, heads, dims, dims)  # d_S = 4 < d_T = 8: one head each, 4 best dims
    assert small.q_scale == pytest.approx(np.sqrt(4 / 8)) and len(small.qk) == 16
    assert set(small.qk[:4]) <= set(range(0, 8))  # first student head = teacher head 0 (teacher order kept)
    big = plan_heads(1, 16, 4, 32, heads, dims, dims)  # d_S = 16 = 2 d_T: merges heads 1 and 2 (the best two)
    assert big.q_scale == pytest.approx(np.sqrt(16) / (2 * np.sqrt(8)))
    assert set(big.qk) == set(range(8, 24))


def test_head_merge_reproduces_mean_logits():
    """A merged head's logit is the mean of its teacher heads' logits (same temperature)."""
    teacher = _teacher(layers=1, heads=4, hidden=32, inter=48, cls=BertModel)
    imp = _importance(teacher)
    student = inherit_student(Arch(1, 2, 32, 48, vocab_size=60, max_positions=40), teacher, imp,
                              model_class="BertModel")
    x = torch.randn(5, 32)
    t, s = teacher.encoder.layer[0].attention.self, student.encoder.layer[0].attention.self
    with torch.no_grad():
        tq, tk = t.query(x).view(5, 4, 8), t.key(x).view(5, 4, 8)
        tlog = torch.einsum("iad,jad->aij", tq, tk) / np.sqrt(8)
        sq, sk = s.query(x).view(5, 2, 16), s.key(x).view(5, 2, 16)
        slog = torch.einsum("iad,jad->aij", sq, sk) / np.sqrt(16)
    ranked = np.argsort(-imp.heads[0], kind="stable")
    torch.testing.assert_close(slog[0], tlog[ranked[:2]].mean(0), rtol=1e-4, atol=1e-5)


def test_bad_inputs_are_clear(tmp_path):
    teacher = _teacher()
    imp = _importance(teacher)
    with pytest.raises(ValueError, match=r"does not fit inside teacher ⟨3, 4, 32, 48⟩.*init='random'"):
        inherit_student(Arch(4, 4, 32, 48, vocab_size=60, max_positions=40), teacher, imp)
    with pytest.raises(ValueError, match="BERT-layout teacher.*Linear"):
        inherit_student(Arch(1, 4, 32, 48), torch.nn.Linear(2, 2), imp)
    with pytest.raises(ValueError, match="calibration sample is empty"):
        compute_importance(teacher, [(_ids(n=1), torch.zeros(1, 12))])
    with pytest.raises(ValueError, match="layers=.*distinct"):
        choose_layers([0, 0], 2, imp)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a bortfast importance file"):
        Importance.load(tmp_path / "bad.npz")
    imp.save(tmp_path / "imp.npz")
    np.testing.assert_array_equal(Importance.load(tmp_path / "imp.npz").neurons, imp.neurons)
