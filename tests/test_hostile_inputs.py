"""Hostile inputs at the file boundaries (issue 9): corrupt or truncated checkpoints, pickles that would run code,
NUL bytes and a 10 MB single-line corpus, odd TSV bytes. Each must load correctly or fail with a clear Python error
that names the file, never crash, hang or run foreign code. Complements the cases already covered in
test_distill.py (pickle-only teacher, non-UTF-8 corpus), test_distill_train.py (corrupt trainer checkpoint),
test_runtime.py (corrupt/truncated ONNX), test_tasks.py (malformed rows) and test_search_cli.py / test_pipeline.py
(existing output directories)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

CLEAR = (ValueError, OSError)


class _Evil:
    """Unpickling this touches a marker file: proof that foreign code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _corruptions(weights: Path):
    """(label, bytes) variants of a safetensors file: truncated, zero-length, garbage, absurd header length."""
    raw = weights.read_bytes()
    yield "truncated", raw[: len(raw) // 2]
    yield "empty", b""
    yield "garbage", b"\x00garbage" * 64
    yield "huge-header", (2**62).to_bytes(8, "little") + raw[8:200]
    yield "bad-json-header", (16).to_bytes(8, "little") + b"{not json at all" + raw[24:]


def _assert_clear(err: BaseException, path: Path) -> None:
    assert isinstance(err, CLEAR), f"{type(err).__name__}: {err}"
    assert str(err)


def test_corrupt_safetensors_teacher_is_a_clear_error(tiny_teacher_dir, tmp_path):
    from bortfast.distill import load_teacher

    d = _copy(tiny_teacher_dir, tmp_path / "teacher")
    weights = d / "model.safetensors"
    for label, data in list(_corruptions(weights)):
        weights.write_bytes(data)
        with pytest.raises(CLEAR) as info:
            load_teacher(d)
        _assert_clear(info.value, weights)
        assert "model.safetensors" in str(info.value) or str(d) in str(info.value), (label, str(info.value))


def test_corrupt_safetensors_student_for_finetune_and_export(tiny_teacher_dir, tmp_path):
    from bortfast.export import to_onnx
    from bortfast.finetune import build_model

    d = _copy(tiny_teacher_dir, tmp_path / "student")
    weights = d / "model.safetensors"
    for label, data in list(_corruptions(weights))[:3]:
        weights.write_bytes(data)
        with pytest.raises(CLEAR) as info:
            build_model(d, "sst2")
        _assert_clear(info.value, weights)
        with pytest.raises(CLEAR) as info:
            to_onnx(d, tmp_path / f"{label}.onnx")
        _assert_clear(info.value, weights)
        assert not (tmp_path / f"{label}.onnx").exists(), "a failed export must not leave an output file"


def test_malicious_pickle_checkpoint_never_runs(tiny_teacher_dir, tmp_path):
    import torch

    from bortfast.distill import load_teacher
    from bortfast.finetune import build_model

    d = _copy(tiny_teacher_dir, tmp_path / "pickled")
    (d / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    torch.save({"bert.embeddings.word_embeddings.weight": _Evil(marker)}, d / "pytorch_model.bin")
    with pytest.raises(ValueError, match="refusing to unpickle"):
        load_teacher(d)
    # Opting in still goes through torch.load(weights_only=True), which refuses arbitrary callables; finetune's
    # from_pretrained does the same.
    for call in (lambda: load_teacher(d, allow_pickle=True), lambda: build_model(d, "sst2")):
        try:
            call()
        except Exception as err:  # the library's own unpickling error type; what matters is that nothing ran
            assert "weights_only" in str(err) or "Unpickl" in type(err).__name__, f"{type(err).__name__}: {err}"
        else:
            pytest.fail("a checkpoint holding a code-running pickle loaded")
    assert not marker.exists(), "unpickling ran foreign code"


@pytest.fixture(scope="module")
def tokenizer(tiny_teacher_dir):
    from bortfast.distill import load_teacher

    return load_teacher(tiny_teacher_dir).tokenizer


def test_nul_bytes_in_corpus(tokenizer, tmp_path):
    from _tiny import tiny_text

    from bortfast.distill import load_corpus

    text = tiny_text(200)
    f = tmp_path / "nul.txt"
    f.write_bytes(text[:500].encode() + b"\x00\x00" + text[500:].replace(" ", "\x00 ", 20).encode() + b"\x00")
    c = load_corpus(f, tokenizer, seq_len=16)
    clean = tmp_path / "clean.txt"
    clean.write_text(text, encoding="utf-8")
    ref = load_corpus(clean, tokenizer, seq_len=16)
    blocks = np.concatenate([c.train.numpy(), c.heldout.numpy()])
    assert blocks.min() >= 0 and blocks.max() < len(tokenizer)
    # NUL is a control character the BERT normaliser drops: the token stream is the clean one.
    assert c.train.shape == ref.train.shape


def test_ten_megabyte_single_line_corpus(tokenizer, tmp_path):
    from bortfast.distill import load_corpus

    words = b"the cat sees a red bird near the old house . "
    f = tmp_path / "oneline.txt"
    f.write_bytes(words * (10_000_000 // len(words)))  # ~10 MB, no newline at all
    assert f.stat().st_size > 9_900_000
    c = load_corpus(f, tokenizer, seq_len=32, max_blocks=16)
    assert c.train.shape == (15, 32) and c.heldout.shape == (1, 32)
    assert (c.train[:, 0] == tokenizer.cls_token_id).all()


def test_tsv_with_bad_bytes_and_nul_names_the_file(tmp_path):
    from bortfast.data.tasks import load_examples

    d = tmp_path / "SST-2"
    d.mkdir()
    (d / "train.tsv").write_bytes(b"sentence\tlabel\ngood film\t1\nbad \xff\xfe film\t0\n")
    with pytest.raises(ValueError, match=r"SST-2/train.tsv: not UTF-8 text \(byte 0xff"):
        load_examples("sst2", d, "train")
    (d / "train.tsv").write_bytes(b"sentence\tlabel\ngood\x00film\t1\n\x00\t\x00\n")
    with pytest.raises(ValueError, match=r"train.tsv:3"):
        load_examples("sst2", d, "train")
    (d / "train.tsv").write_bytes(b"")
    with pytest.raises(ValueError, match="train.tsv"):
        load_examples("sst2", d, "train")
