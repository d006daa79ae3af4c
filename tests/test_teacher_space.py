"""The student in the teacher's space (issue 29, item 5): its projection shipped as a sentence-transformers Dense
module (bortfast.export.dense), read by SentenceTransformer(dir), recorded by to_onnx and applied by Encoder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from _tiny import save_tiny_sentence_teacher

from bortfast.export.dense import IDENTITY, read_dense, write_dense_module
from bortfast.export.onnx import to_onnx
from bortfast.runtime import Encoder

SENTENCES = ["the red cat sleeps near the river", "a dog runs", "two old kings read and write today at night",
             "good acting", "the cat and the dog"]
TEACHER_WIDTH = 48


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """A tiny hidden-32 sentence-transformers student (mean pooling, Normalize) with a 32 → 48 Dense module."""
    path = save_tiny_sentence_teacher(tmp_path_factory.mktemp("ts") / "student", pooling="mean", normalize=True)
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(TEACHER_WIDTH, 32)).astype(np.float32) / 6  # (H_t, H_s)
    bias = rng.normal(size=TEACHER_WIDTH).astype(np.float32)
    write_dense_module(path, weight, bias)
    return path, weight, bias


def test_sentence_transformers_emits_the_projected_pooled_vector(student_dir):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertModel

    path, weight, bias = student_dir
    modules = json.loads((path / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense", "3_Normalize"]
    config = json.loads((path / "2_Dense" / "config.json").read_text())
    assert config == {"in_features": 32, "out_features": TEACHER_WIDTH, "bias": True, "activation_function": IDENTITY}
    st = SentenceTransformer(str(path), device="cpu")
    got = st.encode(SENTENCES, convert_to_numpy=True)
    assert got.shape == (len(SENTENCES), TEACHER_WIDTH)

    # the manual reference: the student's mean-pooled last hidden states, projected, then L2-normalised
    tok = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    batch = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state  # (B, L, 32)
    m = batch["attention_mask"][..., None].float()
    pooled = ((hidden * m).sum(1) / m.sum(1)).numpy()  # (B, 32)
    want = pooled @ weight.T + bias  # (B, 48)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # mean pooling commutes with the affine map: projecting every token and then pooling gives the same
    tokens = hidden.numpy() @ weight.T + bias  # (B, L, 48)
    per_token = (tokens * m.numpy()).sum(1) / m.numpy().sum(1)
    np.testing.assert_allclose(per_token, pooled @ weight.T + bias, atol=1e-4)


def test_onnx_export_records_it_and_the_encoder_applies_it(student_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    path, weight, bias = student_dir
    report = to_onnx(path, tmp_path / "model.onnx", encoder_only=True)
    assert report.dense == (32, TEACHER_WIDTH)
    encoder = Encoder(tmp_path / "model.onnx")
    np.testing.assert_array_equal(encoder.dense[0], weight)
    got = encoder.encode(SENTENCES)
    want = SentenceTransformer(str(path), device="cpu").encode(SENTENCES, convert_to_numpy=True)
    assert got.shape == (len(SENTENCES), TEACHER_WIDTH)
    np.testing.assert_allclose(got, want, atol=1e-4)
    with pytest.raises(ValueError, match="maps 32-wide pooled vectors"):
        encoder.encode(SENTENCES, pooling="cls+mean")


def test_rewriting_replaces_the_module_and_bad_modules_are_refused(student_dir, tmp_path):
    path = shutil.copytree(student_dir[0], tmp_path / "copy")
    write_dense_module(path, np.eye(32, dtype=np.float32)[:16], None)  # again: replaced, not added
    modules = json.loads((path / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Dense", "3_Normalize"]
    dense = read_dense(path)
    assert dense.out_features == 16 and dense.bias is None
    config = json.loads((path / "2_Dense" / "config.json").read_text())
    (path / "2_Dense" / "config.json").write_text(json.dumps({**config, "activation_function":
                                                              "torch.nn.modules.activation.Tanh"}))
    with pytest.raises(ValueError, match="identity-activation"):
        read_dense(path)
    with pytest.raises(ValueError, match=r"bias must be \(16,\)"):
        write_dense_module(path, np.eye(32, dtype=np.float32)[:16], np.zeros(3))


@pytest.mark.parametrize("bad", ["", "..", "../elsewhere", "/tmp"])
def test_a_module_folder_outside_the_model_is_refused_and_nothing_is_removed(student_dir, tmp_path, bad):
    path = shutil.copytree(student_dir[0], tmp_path / "copy")
    (tmp_path / "elsewhere").mkdir()
    modules = json.loads((path / "modules.json").read_text())
    dense = next(m for m in modules if m["path"] == "2_Dense")
    dense["path"] = bad
    (path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="directly inside the model directory"):
        write_dense_module(path, np.eye(32, dtype=np.float32)[:16], None)
    assert (path / "config.json").is_file() and (path / "2_Dense").is_dir() and (tmp_path / "elsewhere").is_dir()
