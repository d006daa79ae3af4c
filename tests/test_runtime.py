"""bortfast.runtime: Encoder/Classifier over ONNX Runtime vs the torch model; bad input; works without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import save_tiny_bert, vocab_tokenizer
from transformers import BertForSequenceClassification, BertModel, BertTokenizerFast

from bortfast.export import to_onnx
from bortfast.runtime import Classifier, Encoder

SENTENCES = [
    "a gripping , funny and moving film .",
    "it 's a bad movie .",
    "the plot meanders , and the acting is wooden , but the score is lovely and the final act lands its punches .",
    "yes",
    "an unexpectedly tender story about two brothers , a dog and a long winter .",
]


def _save(path: Path, cls, tokenizer, **extra) -> Path:
    return save_tiny_bert(path, cls, tokenizer=tokenizer, max_positions=24, **extra)


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizerFast:
    return vocab_tokenizer()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runtime")
    enc = _save(root / "enc", BertModel, tokenizer)
    clf = _save(root / "clf", BertForSequenceClassification, tokenizer, num_labels=2,
                id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    to_onnx(enc, root / "enc.onnx")
    to_onnx(clf, root / "clf.onnx")
    to_onnx(enc, root / "enc-notok.onnx", embed_tokenizer=False)
    return {"enc_dir": enc, "clf_dir": clf, "enc": root / "enc.onnx", "clf": root / "clf.onnx",
            "enc_notok": root / "enc-notok.onnx", "root": root}


def _torch(model_dir: Path, cls, tokenizer, texts, max_length=24):
    model = cls.from_pretrained(model_dir).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        return model(**batch, return_dict=False)[0].numpy(), batch["attention_mask"].numpy()


def test_classifier_matches_torch_with_batching_and_truncation(exported, tokenizer):
    want, _ = _torch(exported["clf_dir"], BertForSequenceClassification, tokenizer, SENTENCES)
    clf = Classifier(exported["clf"], threads=1, batch_size=2)  # 3 batches, length-sorted, one text truncated
    got = clf.logits(SENTENCES)
    assert got.shape == (5, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert clf.labels == ["negative", "positive"]
    np.testing.assert_array_equal(clf.predict(SENTENCES), want.argmax(1))
    np.testing.assert_allclose(clf.predict_proba(SENTENCES).sum(1), 1, rtol=1e-6)
    # one big batch in input order gives the same answer as sorted small batches
    one_batch = Classifier(exported["clf"], batch_size=64, sort_by_length=False).logits(SENTENCES)
    np.testing.assert_allclose(one_batch, got, atol=1e-5)


def test_encoder_pooling_and_token_states(exported, tokenizer):
    states, mask = _torch(exported["enc_dir"], BertModel, tokenizer, SENTENCES)
    enc = Encoder(exported["enc"], batch_size=3)
    # a plain transformers directory: recorded as mean pooling, no normalisation (sentence-transformers' default)
    assert enc.pooling == "mean" and enc.normalize is False
    mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(enc.encode(SENTENCES), mean, atol=1e-4)
    np.testing.assert_allclose(enc.encode(SENTENCES, pooling="cls"), states[:, 0], atol=1e-4)
    unit = enc.encode(SENTENCES, pooling="cls", normalize=True)
    np.testing.assert_allclose(unit, states[:, 0] / np.linalg.norm(states[:, 0], axis=1, keepdims=True), atol=1e-4)
    tokens = enc.token_states(SENTENCES)
    for i, t in enumerate(tokens):
        assert t.shape == (mask[i].sum(), 32)
        np.testing.assert_allclose(t, states[i, : mask[i].sum()], atol=1e-4)
    # explicit tokenizer (directory with tokenizer.json) instead of the embedded one
    enc2 = Encoder(exported["enc_notok"], exported["enc_dir"])
    np.testing.assert_allclose(enc2.encode(SENTENCES, pooling="cls"), states[:, 0], atol=1e-4)
    # sentence pairs get segment ids 0/1 like the HF tokenizer
    pairs = [("a good film", "i liked it"), ("bad", "very bad indeed")]
    model = BertModel.from_pretrained(exported["enc_dir"]).eval()
    batch = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(**batch).last_hidden_state[:, 0].numpy()
    np.testing.assert_allclose(enc.encode(pairs, pooling="cls"), want, atol=1e-4)


def test_too_long_without_truncation_empty_and_bad_types(exported):
    enc = Encoder(exported["enc"], truncation=False)
    with pytest.raises(ValueError, match=r"input 1 has \d+ tokens, more than the model's maximum 24"):
        enc.encode(["short", SENTENCES[2]])
    assert enc.encode(["short"]).shape == (1, 32)
    with pytest.raises(ValueError, match="empty input list"):
        enc.encode([])
    with pytest.raises(TypeError, match="pass a list of texts"):
        enc.encode("one string")
    with pytest.raises(TypeError, match="input 1 is 3"):
        enc.encode(["a", 3])
    with pytest.raises(ValueError, match="max_length must be in"):
        Encoder(exported["enc"], max_length=100)
    with pytest.raises(ValueError, match="pooling must be"):
        enc.encode(["a"], pooling="median")
    with pytest.raises(ValueError, match="threads must be"):
        Encoder(exported["enc"], threads=0)


def test_bad_files(exported, tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        Encoder(corrupt)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported["enc"].read_bytes()[:5000])
    with pytest.raises(ValueError, match="not a loadable ONNX model"):
        Encoder(truncated)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Encoder(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="has no embedded tokenizer"):
        Encoder(exported["enc_notok"])
    with pytest.raises(ValueError, match="Classifier needs a model with output 'logits'"):
        Classifier(exported["enc"])
    with pytest.raises(ValueError, match="Encoder needs a model with output 'last_hidden_state'"):
        Encoder(exported["clf"])
    bad_tok = tmp_path / "tokenizer.json"
    bad_tok.write_text("{not json")
    with pytest.raises(ValueError, match="not a tokenizers JSON file"):
        Encoder(exported["enc_notok"], bad_tok)


def test_runtime_works_without_torch_or_transformers(exported):
    script = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError(f"blocked import of {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        from bortfast.runtime import Classifier
        clf = Classifier({str(exported["clf"])!r}, threads=1)
        print(clf.logits({SENTENCES!r}).shape, clf.labels)
        assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(5, 2) ['negative', 'positive']" in done.stdout
