"""bortfast.export: fused-operator counts, numerical parity with torch, INT8, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from _tiny import save_tiny_bert, vocab_tokenizer
from transformers import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2Model,
)

from bortfast.export import check_fusions, random_inputs, to_onnx


@pytest.fixture(scope="module")
def tokenizer() -> BertTokenizerFast:
    return vocab_tokenizer()


def torch_outputs(model_dir: Path, cls, inputs: dict[str, np.ndarray]) -> np.ndarray:
    model = cls.from_pretrained(model_dir).eval()  # default (SDPA) attention: what a user runs
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=False)[0].numpy()


def run_onnx(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)[0]


@pytest.mark.parametrize(("hidden", "heads", "layers"), [(32, 4, 2), (48, 3, 1), (64, 8, 3), (32, 1, 2)])
def test_every_layer_fused_and_parity(tmp_path, hidden, heads, layers):
    model_dir = save_tiny_bert(tmp_path / "m", hidden=hidden, heads=heads, layers=layers)
    report = to_onnx(model_dir, tmp_path / "m.onnx")
    fused = report.fused_ops
    assert fused.get("Attention", 0) + fused.get("MultiHeadAttention", 0) == layers
    assert fused.get("SkipLayerNormalization", 0) == 2 * layers
    assert sum(fused.get(op, 0) for op in ("BiasGelu", "FastGelu", "Gelu")) == layers
    assert fused.get("EmbedLayerNormalization", 0) == 1
    assert report.fusion_complete and report.parity_max_abs_diff <= 1e-4
    # the file itself, on a batch/length it was not traced with, against the default-attention torch model
    inputs = random_inputs(99, 5, 41, seed=7)
    got = run_onnx(tmp_path / "m.onnx", inputs)
    want = torch_outputs(model_dir, BertModel, inputs)
    assert got.shape == (5, 41, hidden)
    assert np.abs(got - want).max() <= 1e-4
    graph_ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization"} <= graph_ops


@pytest.mark.parametrize(("cls", "shape"), [(BertForSequenceClassification, (4, 3)),
                                            (BertForMaskedLM, (4, 19, 99))])
def test_heads_export_logits(tmp_path, cls, shape):
    model_dir = save_tiny_bert(tmp_path / "m", cls, num_labels=3)
    report = to_onnx(model_dir, tmp_path / "m.onnx")
    assert report.output_name == "logits" and report.model_class == cls.__name__
    assert report.fusion_complete
    inputs = random_inputs(99, 4, 19, seed=3)
    got = run_onnx(tmp_path / "m.onnx", inputs)
    assert got.shape == shape
    assert np.abs(got - torch_outputs(model_dir, cls, inputs)).max() <= 1e-4
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["logits"]
    meta = session.get_modelmeta().custom_metadata_map
    if cls is BertForSequenceClassification:
        assert json.loads(meta["bortfast.id2label"]) == ["LABEL_0", "LABEL_1", "LABEL_2"]


def test_int8_close_by_cosine_and_smaller(tmp_path, tokenizer):
    model_dir = save_tiny_bert(tmp_path / "m", hidden=64, heads=4, tokenizer=tokenizer)
    fp32 = to_onnx(model_dir, tmp_path / "fp32.onnx")
    int8 = to_onnx(model_dir, tmp_path / "int8.onnx", quantize="int8")
    assert int8.quantize == "int8" and int8.has_tokenizer
    assert int8.parity_cosine >= 0.99, int8
    assert int8.parity_max_abs_diff > fp32.parity_max_abs_diff  # it really is quantised
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert ops.count("QAttention") == 2 and "MatMulInteger" in ops  # the fused attention is quantised too
    # weights dominate the file: embeddings stay fp32, the encoder matmuls shrink ~4x
    assert int8.file_bytes < fp32.file_bytes


def test_unoptimized_export_has_no_fusions_but_matches(tmp_path):
    model_dir = save_tiny_bert(tmp_path / "m")
    report = to_onnx(model_dir, tmp_path / "m.onnx", optimize=False)
    assert report.fused_ops == {} and report.fusion_complete is None
    assert report.parity_max_abs_diff <= 1e-4
    assert "Attention" not in {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}


def test_check_fusions_names_what_is_missing():
    assert check_fusions({"Attention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2,
                          "EmbedLayerNormalization": 1}, 2) == []
    missing = check_fusions({"Attention": 0, "SkipLayerNormalization": 4, "FastGelu": 2}, 2)
    assert missing == ["Attention|MultiHeadAttention: 0 < 2", "EmbedLayerNormalization: 0 < 1"]


def test_cli_export(tmp_path, capsys):
    from bortfast.cli import main

    model_dir = save_tiny_bert(tmp_path / "m", BertForSequenceClassification)
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "o.onnx"), "--int8",
                 "--report", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["quantize"] == "int8" and report["output_name"] == "logits"
    assert (tmp_path / "o.onnx").is_file()
    assert main(["export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rejects_non_bert_model_dir(tmp_path):
    GPT2Model(GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=99)).save_pretrained(tmp_path / "gpt2")
    with pytest.raises(ValueError, match="model_type='gpt2'"):
        to_onnx(tmp_path / "gpt2", tmp_path / "x.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        to_onnx(tmp_path / "empty", tmp_path / "x.onnx")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        to_onnx(tmp_path / "missing", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_rejects_unsupported_class_opset_and_quantize(tmp_path):
    model_dir = save_tiny_bert(tmp_path / "m")
    with pytest.raises(ValueError, match="opset 9 is not supported"):
        to_onnx(model_dir, tmp_path / "x.onnx", opset=9)
    with pytest.raises(ValueError, match="opset 99 is not supported"):
        to_onnx(model_dir, tmp_path / "x.onnx", opset=99)
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        to_onnx(model_dir, tmp_path / "x.onnx", quantize="int4")
    config = json.loads((model_dir / "config.json").read_text())
    config["architectures"] = ["BertForPreTraining"]
    (model_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="BertForPreTraining"):
        to_onnx(model_dir, tmp_path / "x.onnx")
    assert not list(tmp_path.glob("*.onnx"))


def test_precision_auto_times_both_measures_agreement_and_ships_one(tmp_path, capsys):
    from bortfast.cli import main
    from bortfast.export.precision import PrecisionConfig, choose_precision, decide
    from bortfast.profile.timing import TimingConfig

    fast = TimingConfig(rounds=2, min_samples=4, warmup=1, settle_s=0.0)
    encoder = save_tiny_bert(tmp_path / "enc", hidden=64, heads=4, layers=2, intermediate=128)
    report = choose_precision(encoder, tmp_path / "enc.onnx", config=PrecisionConfig(
        threads=1, seq_len=32, sample_size=20, timing=fast, min_speedup=1e-6))  # any speed passes: agreement decides
    assert report.agreement_metric == "cosine" and 0.99 <= report.agreement <= 1.0 + 1e-9
    assert report.chosen == "int8" and "agrees" in report.reason
    assert {k: v["n"] >= 4 for k, v in report.timings.items()} == {"fp32": True, "int8": True}
    assert report.timings["fp32"]["pid"] != report.timings["int8"]["pid"]
    assert report.int8_speedup == pytest.approx(report.timings["fp32"]["median_ms"]
                                                / report.timings["int8"]["median_ms"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "enc.onnx")).graph.node}
    assert "MatMulInteger" in ops  # the file shipped is the INT8 one
    # a classifier: prediction agreement; an impossible speed bar keeps fp32
    clf = save_tiny_bert(tmp_path / "clf", BertForSequenceClassification, hidden=64, heads=4)
    assert main(["export", "--model", str(clf), "--out", str(tmp_path / "clf.onnx"), "--precision", "auto",
                 "--threads", "1", "--seq-len", "16", "--min-speedup", "1000", "--report",
                 str(tmp_path / "r.json")]) == 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["chosen"] == "fp32" and "needs >= 1000" in saved["reason"]
    assert saved["agreement_metric"] == "prediction_agreement" and 0 <= saved["agreement"] <= 1
    assert "MatMulInteger" not in {n.op_type for n in onnx.load(str(tmp_path / "clf.onnx")).graph.node}
    assert decide(2.0, 0.5, PrecisionConfig()) == ("fp32", "INT8 agrees only 0.5000 with fp32 (needs >= 0.99)")
    with pytest.raises(ValueError, match="min_agreement must be in"):
        PrecisionConfig(min_agreement=1.5)
    assert main(["export", "--model", str(clf), "--out", str(tmp_path / "x.onnx"), "--int8", "--precision",
                 "fp32"]) == 2
    assert "--int8 contradicts --precision fp32" in capsys.readouterr().err
