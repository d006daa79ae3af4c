"""A user's path end to end (issue 26, items 1-7): a sentence-transformers teacher through ``distill``, ``export``
and ``run``; the shipped ONNX embeds like ``SentenceTransformer(student/)`` through :class:`bortfast.Encoder`'s
defaults; ``bench`` times encoders against the user's teacher; files honour the umask."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _tiny import (
    save_tiny_bert,
    save_tiny_sentence_teacher,
    tiny_text,
    vocab_tokenizer,
    write_keyword_sst2,
    write_tiny_corpus,
)

from bortfast.runtime import POOLING_MODES, Encoder, pool

SENTENCES = tiny_text(24, seed=5).splitlines()


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "bortfast", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _same_embeddings(onnx_file: Path, model_dir: Path, min_cosine: float = 0.999) -> None:
    from sentence_transformers import SentenceTransformer

    want = SentenceTransformer(str(model_dir), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    got = Encoder(onnx_file).encode(SENTENCES)
    assert got.shape == want.shape
    cosine = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert cosine.min() >= min_cosine
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1), rtol=1e-3)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """``bortfast distill`` of a narrower student from a tiny sentence-transformers teacher (mean + Normalize)."""
    root = tmp_path_factory.mktemp("user-path")
    teacher = save_tiny_sentence_teacher(root / "teacher", hidden=48, heads=4)
    corpus = write_tiny_corpus(root / "corpus.txt")
    out = root / "distill"
    proc = _cli("distill", "--teacher", str(teacher), "--corpus", str(corpus), "--arch", "1,2,32,48", "--out",
                str(out), "--steps", "4", "--batch-size", "4", "--seq-len", "32", "--no-progress")
    return {"root": root, "teacher": teacher, "corpus": corpus, "final": out / "final", "stderr": proc.stderr}


def test_no_progress_means_no_third_party_bars_or_load_reports(distilled):
    """Item 10: transformers' "Loading weights" / "Writing model shards" bars and load reports stay quiet."""
    for noise in ("Loading weights", "Writing model shards", "LOAD REPORT", "it/s]"):
        assert noise not in distilled["stderr"], distilled["stderr"][-2000:]


def test_distilled_student_of_an_encoder_teacher_is_an_encoder_with_the_teachers_modules(distilled):
    from sentence_transformers import SentenceTransformer

    final = distilled["final"]
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]  # no untrained MLM head shipped (item 3)
    from bortfast.export.card import is_bortfast_card

    assert is_bortfast_card(final / "README.md")  # a model card says what it is and what it came from
    pooling = json.loads((final / "1_Pooling" / "config.json").read_text())
    assert pooling["embedding_dimension"] == 32  # the student's width, not the teacher's 48 (item 6)
    model = SentenceTransformer(str(final), device="cpu")
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    assert dimension() == model.encode(SENTENCES[:2]).shape[1] == 32


def test_distill_export_encoder_embeds_like_sentence_transformers(distilled, tmp_path):
    """Items 1-3: ``distill → export → Encoder`` works and ``Encoder(file).encode`` equals
    ``SentenceTransformer(dir).encode``: the file records mean pooling and normalisation."""
    onnx_file = tmp_path / "student.onnx"
    proc = _cli("export", "--model", str(distilled["final"]), "--out", str(onnx_file))
    report = json.loads(proc.stdout)
    assert report["model_class"] == "BertModel" and report["output_name"] == "last_hidden_state"
    assert report["pooling"] == "mean" and report["normalize"] is True
    encoder = Encoder(onnx_file)
    assert encoder.pooling == "mean" and encoder.normalize
    np.testing.assert_allclose(np.linalg.norm(encoder.encode(SENTENCES), axis=1), 1.0, rtol=1e-5)  # item 2
    _same_embeddings(onnx_file, distilled["final"])
    int8 = tmp_path / "student.int8.onnx"
    _cli("export", "--model", str(distilled["final"]), "--out", str(int8), "--int8")
    _same_embeddings(int8, distilled["final"], min_cosine=0.99)


def test_run_ships_onnx_files_that_embed_like_the_student_directory(distilled, tmp_path):
    """Item 1 through ``bortfast run``: ``model.onnx`` (and INT8) with ``Encoder`` defaults equal
    ``SentenceTransformer(student/)``."""
    out = tmp_path / "run"
    _cli("run", "--teacher", str(distilled["teacher"]), "--corpus", str(distilled["corpus"]), "--out", str(out),
         "--eps", "8", "--steps", "2", "--seq-len", "32", "--distill-steps", "4", "--distill-batch-size", "4",
         "--threads", "1", "--no-progress", "--by-w", "--until", "export")
    assert json.loads((out / "student" / "config.json").read_text())["architectures"] == ["BertModel"]
    _same_embeddings(out / "model.onnx", out / "student")
    # sentence-transformers' ONNX backend reads it inside the model folder
    assert (out / "student" / "onnx" / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()
    from bortfast.export.st_onnx import quantized_file_name

    int8 = out / "student" / "onnx" / quantized_file_name()  # the name sentence-transformers' INT8 export gives
    assert int8.name.startswith("model_qint8_") and int8.read_bytes() == (out / "model.int8.onnx").read_bytes()
    _same_embeddings(out / "model.int8.onnx", out / "student", min_cosine=0.99)


def test_export_of_a_masked_lm_can_write_its_encoder(tmp_path):
    from transformers import BertForMaskedLM

    model = save_tiny_bert(tmp_path / "mlm", BertForMaskedLM, tokenizer=vocab_tokenizer(), intermediate=64)
    full = json.loads(_cli("export", "--model", str(model), "--out", str(tmp_path / "full.onnx")).stdout)
    assert full["model_class"] == "BertForMaskedLM" and full["output_name"] == "logits"
    enc = json.loads(_cli("export", "--model", str(model), "--out", str(tmp_path / "enc.onnx"),
                          "--encoder-only").stdout)
    assert enc["model_class"] == "BertModel" and enc["output_name"] == "last_hidden_state"
    assert enc["pooling"] == "mean" and enc["normalize"] is False  # a plain directory: sentence-transformers' default
    _same_embeddings(tmp_path / "enc.onnx", model)


@pytest.mark.parametrize("modes", [*POOLING_MODES, ["cls", "mean"]])
def test_pool_equals_sentence_transformers_pooling(modes):
    """The runtime's numpy pooling (the reference is sentence-transformers' own Pooling module) for every mode."""
    import torch
    from sentence_transformers.models import Pooling

    rng = np.random.default_rng(0)
    states = rng.normal(size=(3, 7, 8)).astype(np.float32)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 1 + [0] * 6], dtype=np.int64)
    module = Pooling(8, pooling_mode=modes)
    want = module({"token_embeddings": torch.from_numpy(states), "attention_mask": torch.from_numpy(mask)})
    got = pool(states, mask, modes if isinstance(modes, str) else "+".join(modes))
    np.testing.assert_allclose(got, want["sentence_embedding"].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling must be one of .* got 'median'"):
        pool(states, mask, "median")


def test_export_records_every_pooling_mode_a_teacher_declares(tmp_path):
    teacher = save_tiny_sentence_teacher(tmp_path / "st", pooling=["cls", "max"], normalize=False)
    _cli("export", "--model", str(teacher), "--out", str(tmp_path / "t.onnx"))
    assert Encoder(tmp_path / "t.onnx").pooling == "cls+max"
    _same_embeddings(tmp_path / "t.onnx", teacher)


def test_written_files_and_directories_honour_the_umask(distilled, tmp_path):
    """Item 7: 0644 files and 0755 directories under umask 022 (the atomic writers used to leave 0600 / 0700)."""
    from bortfast._base.io import atomic_dir, atomic_open, atomic_path

    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "a.json") as f:
            f.write("{}")
        with atomic_path(tmp_path / "b.bin") as p:
            p.write_bytes(b"x")
        with atomic_dir(tmp_path / "c") as d:
            (d / "x").write_text("x")
    finally:
        os.umask(old)
    for name, mode in (("a.json", 0o644), ("b.bin", 0o644), ("c", 0o755)):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    final = distilled["final"]  # written by the CLI under the test process's umask (022 here)
    for path in (final, final / "config.json", final / "model.safetensors", final / "1_Pooling" / "config.json"):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path


def test_bench_times_encoders_against_the_users_teacher(distilled, tmp_path):
    """Item 4: ``bench --student`` of a masked-LM/encoder checkpoint times encoders, names the baseline 'teacher'
    and shows no paper target (the baseline is not BERT-base)."""
    proc = _cli("bench", "--out", str(tmp_path), "--student", str(distilled["final"]), "--teacher",
                str(distilled["teacher"]), "--no-large", "--batch-sizes", "1", "--seq-len", "16", "--threads", "1",
                "--rounds", "1", "--min-samples", "2")
    saved = json.loads((tmp_path / "speedup.json").read_text())
    assert saved["targets"] == {} and "MISSED" not in proc.stdout and "paper's targets do not apply" in proc.stdout
    assert "student_fp32_vs_torch_teacher_b1" in saved["speedups"]
    assert not any("torch_base" in k for k in saved["speedups"])
    assert saved["compared"].startswith("encoders")


def test_distill_finetune_export_classifier(distilled, tmp_path):
    """README's stage-by-stage route to a classifier: ``distill`` → ``finetune --model DIR/final`` → ``export
    --model FT/best`` → :class:`bortfast.Classifier`, which predicts as the torch model does."""
    import torch

    from bortfast import Classifier, load_finetuned

    glue = write_keyword_sst2(tmp_path / "glue")
    _cli("finetune", "--model", str(distilled["final"]), "--task", "sst2", "--data", str(glue), "--out",
         str(tmp_path / "ft"), "--epochs", "1", "--batch-size", "8", "--lr", "5e-3", "--threads", "1",
         "--no-progress")
    report = json.loads(_cli("export", "--model", str(tmp_path / "ft" / "best"), "--out",
                             str(tmp_path / "sst2.onnx")).stdout)
    assert report["model_class"] == "BertForSequenceClassification" and report["output_name"] == "logits"
    assert "Fine-tuned from" in (tmp_path / "ft" / "best" / "README.md").read_text()  # its model card
    clf = Classifier(tmp_path / "sst2.onnx")
    texts = ["the movie was good", "the film was bad", "a truly good story"]
    from transformers import AutoTokenizer

    model = load_finetuned(tmp_path / "ft" / "best").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "ft" / "best")
    with torch.no_grad():
        want = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(clf.logits(texts), want, atol=1e-4)
    assert clf.labels is not None and len(clf.labels) == 2
