"""Inheritance wired through distillation, the search, the quality stage and deployment (tiny models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import dress_as_sentence_transformer

from bortfast.data.teacher import model_pooling
from bortfast.distill import DistillConfig, distill, load_corpus, load_teacher, short_train_error
from bortfast.distill.masking import masker_for
from bortfast.evaluation import read_sts, sts_spearman, torch_embedder
from bortfast.search.algorithm import Candidate, SearchResult
from bortfast.search.choice import choose_for_user, error_param_spearman
from bortfast.search.journal import Journal
from bortfast.space import Arch


@pytest.fixture(scope="module")
def st_teacher_dir(tiny_hidden_teacher_dir, tmp_path_factory) -> Path:
    """The tiny encoder-only teacher dressed as a sentence-transformers model (modules.json, mean pooling)."""
    d = tmp_path_factory.mktemp("st-teacher") / "teacher"
    shutil.copytree(tiny_hidden_teacher_dir, d)
    dress_as_sentence_transformer(d, legacy=True, max_seq_length=64)
    return d


@pytest.fixture(scope="module")
def st_student_dir(st_teacher_dir, tiny_corpus_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("st-student")
    cfg = DistillConfig(teacher=str(st_teacher_dir), corpus=[str(tiny_corpus_file)], arch="1,2,24,32",
                        out_dir=str(out), steps=8, batch_size=4, seq_len=32, lr=1e-3, eval_every=0,
                        checkpoint_every=0, progress=False, calibration_blocks=8)
    return distill(cfg)


def test_inherited_distillation_lowers_the_hidden_loss_and_caches_importance(st_student_dir):
    out = st_student_dir.parent
    assert len(list(out.glob("importance-*.npz"))) == 1
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in evals if r.get("event") == "train" and "loss" in r]
    assert losses and all(np.isfinite(losses))
    config = json.loads((st_student_dir / "config.json").read_text())
    assert config["bortfast_inherit"]["rule"] == "importance" and len(config["bortfast_inherit"]["hidden"]) == 24


def test_student_loads_with_sentence_transformers_and_embeds_like_torch(st_student_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    assert model_pooling(st_student_dir) == "mean"
    texts = ["the cat sees a dog", "a small red bird sings quietly today near the river"]
    st_emb = SentenceTransformer(str(st_student_dir), device="cpu").encode(texts)
    model = BertModel.from_pretrained(st_student_dir, add_pooling_layer=False)
    mine = torch_embedder(model, AutoTokenizer.from_pretrained(st_student_dir), pooling="mean")(texts)
    mine = mine / np.linalg.norm(mine, axis=1, keepdims=True)  # the teacher's stack ends in Normalize
    assert st_emb.shape == (2, 24)
    np.testing.assert_allclose(st_emb, mine, rtol=1e-4, atol=1e-5)


def test_exported_student_encodes_with_its_own_pooling(st_student_dir, tmp_path):
    from transformers import AutoTokenizer, BertModel

    from bortfast.export import to_onnx
    from bortfast.runtime import Encoder

    enc_dir = tmp_path / "enc"
    BertModel.from_pretrained(st_student_dir, add_pooling_layer=False).save_pretrained(enc_dir)
    AutoTokenizer.from_pretrained(st_student_dir).save_pretrained(enc_dir)
    shutil.copytree(st_student_dir / "1_Pooling", enc_dir / "1_Pooling")
    to_onnx(enc_dir, tmp_path / "m.onnx")
    encoder = Encoder(tmp_path / "m.onnx", threads=1)
    assert encoder.pooling == "mean"
    texts = ["the king reads", "two green fish swim under the old bridge slowly"]
    np.testing.assert_allclose(encoder.encode(texts), encoder.encode(texts, pooling="mean"))
    assert not np.allclose(encoder.encode(texts), encoder.encode(texts, pooling="cls"))
    spinning = Encoder(tmp_path / "m.onnx", threads=1, spinning=True)  # the option changes timing, not results
    np.testing.assert_allclose(spinning.encode(texts), encoder.encode(texts), rtol=1e-6, atol=1e-6)


def test_inherit_rejects_a_student_larger_than_the_teacher(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    cfg = DistillConfig(teacher=str(tiny_hidden_teacher_dir), corpus=[str(tiny_corpus_file)], arch="3,4,48,64",
                        out_dir=str(tmp_path), steps=1, batch_size=2, seq_len=32, progress=False)
    with pytest.raises(ValueError, match=r"does not fit inside teacher ⟨2, 4, 48, 37⟩.*init='random'"):
        distill(cfg)


def test_short_train_error_inherited_ranks_capacity_better_than_random(tiny_hidden_teacher_dir, tiny_corpus_file):
    teacher = load_teacher(tiny_hidden_teacher_dir)
    corpus = load_corpus([tiny_corpus_file], teacher.tokenizer, seq_len=32, seed=0)
    full = Arch(2, 4, 48, 37, vocab_size=teacher.arch.vocab_size, max_positions=teacher.arch.max_positions)
    small = Arch(1, 2, 16, 16, vocab_size=teacher.arch.vocab_size, max_positions=teacher.arch.max_positions)
    kw = dict(steps=2, lr=1e-4, batch_size=4, seed=1)  # seed 0 would rebuild the tiny teacher itself at random
    e_full, e_small = (short_train_error(a, teacher, corpus, **kw) for a in (full, small))
    assert e_full < e_small  # the teacher's own shape starts as the teacher: almost no distillation loss
    assert e_full < short_train_error(full, teacher, corpus, init="random", **kw)


def test_hidden_teacher_without_mlm_is_not_masked(tiny_hidden_teacher_dir):
    teacher = load_teacher(tiny_hidden_teacher_dir)
    blocks = torch.randint(5, 50, (3, 16))
    inputs, labels = masker_for(teacher.tokenizer, "hidden", 0.0)(blocks, seed=0)
    assert torch.equal(inputs, blocks) and (labels == -100).all()
    inputs, labels = masker_for(teacher.tokenizer, "hidden", 0.1)(blocks, seed=0)
    assert (labels != -100).any()


def _result(errors: list[float | None], latencies: list[float]) -> SearchResult:
    cands = [Candidate(arch=Arch(1 + k, 2, 32, 64), params=100 * (k + 1), flops=1, latency=lat, pivot=e is not None,
                       error=e, theta={"lr": 1.0} if e is not None else None, w=(1.0 / e if e else None))
             for k, (e, lat) in enumerate(zip(errors, latencies))]
    return SearchResult(settings={}, teacher=Arch(9, 2, 32, 64), teacher_params=1000, teacher_latency=10.0,
                        latency_unit="ms", candidates=cands, trials=[], best=0, best_theta={"lr": 1.0}, best_w=2.0,
                        pareto_front=[], approx_pareto_front=None, trainings=3)


def test_user_budget_choice_and_error_capacity_spearman():
    r = _result([0.5, 0.3, None, 0.1], [1.0, 2.0, 3.0, 5.0])
    assert error_param_spearman(r) == pytest.approx(-1.0)
    assert choose_for_user(r).best == 0 and choose_for_user(r).selection == {"rule": "W"}
    assert choose_for_user(r, max_latency=2.5).best == 1  # lowest ê within 2.5 ms
    assert choose_for_user(r, min_speedup=2.0).best == 3  # î <= 10 / 2: ξ of ê 0.1 at 5 ms
    assert choose_for_user(r, max_error=0.35).best == 1  # fastest with ê <= 0.35
    with pytest.raises(ValueError, match="max_latency=0.5"):
        choose_for_user(r, max_latency=0.5)


def test_journal_of_another_error_definition_is_refused(tmp_path):
    Journal(tmp_path, {"error_definition": "bortfast 0.1.0 ê v1 random", "steps": 2})
    with pytest.raises(ValueError, match="error_definition"):
        Journal(tmp_path, {"error_definition": "bortfast 0.1.0 ê v2 inherit:importance:128", "steps": 2})


def test_read_sts_and_spearman(tmp_path):
    f = tmp_path / "sts.tsv"
    rows = ["index\tsentence1\tsentence2\tscore", "0\ta cat\ta cat\t5.0", "1\ta cat\ta dog\t2.5",
            "2\ta cat\tthe river runs under the old bridge\t0.0", "3\tshort\t"]
    f.write_text("\n".join(rows) + "\n")
    pairs = read_sts(f)
    assert len(pairs.scores) == 3  # the unscored line is skipped
    vocab = {w: i for i, w in enumerate("a cat dog the river runs under old bridge".split())}

    def embed(texts):
        out = np.zeros((len(texts), len(vocab)))
        for r, t in enumerate(texts):
            for w in t.split():
                out[r, vocab[w]] += 1
        return out

    assert sts_spearman(embed, pairs) == pytest.approx(1.0)
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="lacks column"):
        read_sts(tmp_path / "bad.tsv")


def test_excluded_lines_never_enter_a_training_block(tiny_hidden_teacher_dir, tiny_corpus_file, tmp_path):
    teacher = load_teacher(tiny_hidden_teacher_dir)
    lines = tiny_corpus_file.read_text().splitlines()
    held = lines[-30:]
    without = tmp_path / "without.txt"
    without.write_text("\n".join(ln for ln in lines if ln not in set(held)) + "\n")
    a = load_corpus([tiny_corpus_file], teacher.tokenizer, seq_len=16, seed=0, exclude=held)
    b = load_corpus([without], teacher.tokenizer, seq_len=16, seed=0)
    assert torch.equal(a.train, b.train) and torch.equal(a.heldout, b.heldout)
    assert a.fingerprint != load_corpus([tiny_corpus_file], teacher.tokenizer, seq_len=16, seed=0).fingerprint
