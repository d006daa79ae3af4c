"""Serving without bortfast (issue 28): :func:`bortfast.export.st_onnx.write_sentence_transformers_onnx` puts an
encoder export at ``onnx/model.onnx``, where ``SentenceTransformer(dir, backend="onnx")`` looks.

That backend runs through optimum (``ORTModelForFeatureExtraction``), which cannot be installed beside
transformers 5 (optimum-onnx 0.1.0 requires transformers < 4.58 and fails to import with 5.x). So the test checks
the contract the backend relies on, always: the file's place and name, its inputs and output, and that ONNX Runtime
running it on sentence-transformers' own tokenised features, followed by the model's own pooling and normalisation
modules, gives ``SentenceTransformer(dir).encode``'s vectors. The backend itself is then exercised where optimum
imports; where it does not, the test asserts the backend's own "requires installing Optimum" error, so nothing is
skipped silently.

Checked by hand on 2026-12-03 in an overlay of the previous stack (sentence-transformers 5.1.2, transformers 4.57.6,
optimum 2.1.0 + optimum-onnx 0.1.0, onnxruntime 1.32): ``SentenceTransformer(dir, backend="onnx")`` loads this
file through ``ORTModelForFeatureExtraction``, fused ``com.microsoft`` operators included, and its vectors equal the
torch backend's to 9e-8."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _tiny import save_tiny_bert, save_tiny_sentence_teacher

from bortfast.export.onnx import to_onnx
from bortfast.export.st_onnx import write_sentence_transformers_onnx

SENTENCES = ["the red cat sleeps near the river", "a dog runs", "two old kings read and write today at night",
             "good acting"]


def _optimum_importable() -> bool:
    try:
        import optimum.onnxruntime  # noqa: F401
    except Exception:  # ImportError, or optimum built for transformers 4 failing inside its own imports
        return False
    return True


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("st-onnx")
    model_dir = save_tiny_sentence_teacher(root / "model", pooling="mean", normalize=True)
    onnx_file = root / "encoder.onnx"
    report = to_onnx(model_dir, onnx_file, encoder_only=True)
    assert report.fused_ops.get("Attention") == 2 and report.fused_ops.get("EmbedLayerNormalization") == 1
    return model_dir, onnx_file


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_places_the_file_where_the_backend_looks(exported, tmp_path):
    import onnx
    import onnxruntime as ort
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    target = write_sentence_transformers_onnx(model_dir, exported[1])
    assert target == model_dir / "onnx" / "model.onnx"
    assert target.read_bytes() == exported[1].read_bytes()
    fused = {n.op_type for n in onnx.load(str(target)).graph.node if n.domain == "com.microsoft"}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= fused

    # What ORTModelForFeatureExtraction does: feed the inputs the session declares, read last_hidden_state; then
    # sentence-transformers applies the directory's modules after the Transformer (Pooling, Normalize).
    st = SentenceTransformer(str(model_dir), device="cpu")
    expected = st.encode(SENTENCES, convert_to_numpy=True)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"]
    features = st.tokenize(SENTENCES)
    feeds = {i.name: features[i.name].numpy().astype(np.int64) for i in session.get_inputs()}
    states = session.run(["last_hidden_state"], feeds)[0]  # (B, L, H)
    pipeline = {"token_embeddings": torch.from_numpy(states), "attention_mask": features["attention_mask"]}
    for module in list(st)[1:]:
        pipeline = module(pipeline)
    served = pipeline["sentence_embedding"].numpy()
    assert served.shape == expected.shape
    assert _cosines(served, expected).min() >= 0.999
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_sentence_transformers_onnx_backend(exported, tmp_path):
    from sentence_transformers import SentenceTransformer

    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    write_sentence_transformers_onnx(model_dir, exported[1])
    if not _optimum_importable():
        # The backend's own message: the folder is right, the optional dependency is what is missing.
        with pytest.raises(Exception, match="requires installing Optimum"):
            SentenceTransformer(str(model_dir), backend="onnx", device="cpu")
        return
    served = SentenceTransformer(str(model_dir), backend="onnx", device="cpu").encode(SENTENCES)
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(SENTENCES)
    assert _cosines(served, expected).min() >= 0.999


def test_quantised_name_and_replacement(exported, tmp_path):
    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    target = write_sentence_transformers_onnx(model_dir, exported[1], file_name="model_qint8_avx512_vnni.onnx")
    assert target == model_dir / "onnx" / "model_qint8_avx512_vnni.onnx"
    target.write_bytes(b"stale")
    assert write_sentence_transformers_onnx(model_dir, exported[1], file_name=target.name) == target
    assert target.read_bytes() == exported[1].read_bytes()
    assert write_sentence_transformers_onnx(model_dir, target, file_name=target.name) == target  # itself: no-op
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temp file left


def test_rejects_what_the_backend_cannot_load(exported, tmp_path):
    from transformers import BertForSequenceClassification

    model_dir = shutil.copytree(exported[0], tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        write_sentence_transformers_onnx(model_dir, tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="no config.json"):
        write_sentence_transformers_onnx(tmp_path, exported[1])
    with pytest.raises(ValueError, match="file_name"):
        write_sentence_transformers_onnx(model_dir, exported[1], file_name="../model.onnx")

    classifier = save_tiny_bert(tmp_path / "classifier", BertForSequenceClassification, num_labels=2)
    logits_file = tmp_path / "classifier.onnx"
    to_onnx(classifier, logits_file, check_parity=False, embed_tokenizer=False)
    with pytest.raises(ValueError, match="not last_hidden_state"):
        write_sentence_transformers_onnx(classifier, logits_file)
    assert not (classifier / "onnx").exists()
