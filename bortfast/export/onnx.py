"""ONNX export of a BERT-family checkpoint for CPU deployment with ONNX Runtime (Bort paper, de Wynter & Perry
2020, §5 "Bort ... is 7.9x faster on a CPU than BERT-base"; this module and :mod:`bortfast.apps.bench` make that claim
reproducible).

Pipeline: ``from_pretrained`` (eager attention) → ``torch.onnx.export`` (TorchScript exporter, dynamic batch and
sequence axes) → ONNX Runtime's transformer optimizer (``optimize_model(model_type="bert")``: fused Attention,
SkipLayerNormalization, BiasGelu/FastGelu, EmbedLayerNormalization) → optional INT8 dynamic quantisation
(``quantize_dynamic``) → a numerical parity check against the torch model on padded random inputs.

Why this export path: graphs from transformers 5.x through the default dynamo exporter, or with the SDPA attention
implementation, do not match the optimizer's attention/embedding patterns (0 Attention, 0 EmbedLayerNormalization
fusions). The TorchScript exporter (``dynamo=False``) over a thin wrapper that passes ``attention_mask`` and
``token_type_ids`` explicitly, with ``attn_implementation="eager"``, fuses every layer; :func:`to_onnx` checks the
fused operator counts and fails loudly when a fusion is missing.

The exported file is self-contained for :mod:`bortfast.runtime`: its ONNX metadata holds the output kind, the
maximum sequence length, the label names and (when the model directory has one) the tokenizer's ``tokenizer.json``.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.io import atomic_path
from bortfast.models.config import is_per_layer, load_config

DEFAULT_OPSET = 17
MIN_OPSET = 14  # the optimizer's fusions are tested from here
MAX_OPSET = 20  # the TorchScript exporter's newest opset (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

# transformers class -> (output name, output rank). Token-level outputs are (batch, seq, ...), logits of a sequence
# classifier are (batch, labels).
SUPPORTED_CLASSES: dict[str, tuple[str, int]] = {
    "BertModel": ("last_hidden_state", 3),
    "BertForMaskedLM": ("logits", 3),
    "BertForSequenceClassification": ("logits", 2),
    "BertForTokenClassification": ("logits", 3),
}

# ONNX metadata keys read back by bortfast.runtime.
META_PREFIX = "bortfast."

GELU_FUSIONS = ("BiasGelu", "FastGelu", "Gelu", "GemmFastGelu")
ATTENTION_FUSIONS = ("Attention", "MultiHeadAttention")


@dataclass
class ExportReport:
    """What :func:`to_onnx` wrote and checked."""

    out_path: str  # the ONNX file
    model_class: str  # transformers class exported (BertModel, BertForSequenceClassification, ...)
    output_name: str  # "last_hidden_state" or "logits"
    arch: tuple[int, int, int, int]  # <layers, heads, hidden, intermediate>
    opset: int
    optimized: bool
    quantize: str | None  # None or "int8"
    fused_ops: dict[str, int] = field(default_factory=dict)  # optimizer's fused-operator counts (nonzero only)
    expected_fusions: dict[str, int] = field(default_factory=dict)  # minimum count per fusion group
    fusion_complete: bool | None = None  # every expected fusion present (None when not optimized)
    parity_max_abs_diff: float | None = None  # ONNX vs torch on padded random inputs
    parity_cosine: float | None = None  # mean per-row cosine similarity ONNX vs torch
    has_tokenizer: bool = False  # tokenizer.json embedded in the ONNX metadata
    pooling: str | None = None  # an encoder's sentence pooling recorded in the metadata ("mean", "cls+mean", ...)
    normalize: bool | None = None  # ... and whether its sentence vectors are L2-normalised
    dense: tuple[int, int] | None = None  # (in, out) of a sentence-transformers Dense module recorded in the metadata
    file_bytes: int = 0
    seconds: float = 0.0


def expected_fusions(num_layers: int) -> dict[str, int]:
    """Minimum fused-operator counts for a fully fused BERT encoder of ``num_layers`` layers."""
    return {
        "Attention|MultiHeadAttention": num_layers,
        "SkipLayerNormalization": 2 * num_layers,
        "BiasGelu|FastGelu|Gelu|GemmFastGelu": num_layers,
        "EmbedLayerNormalization": 1,
    }


def check_fusions(fused_ops: dict[str, int], num_layers: int) -> list[str]:
    """The fusion groups below their expected count, as readable strings (empty when fully fused)."""
    missing = []
    for group, want in expected_fusions(num_layers).items():
        have = sum(fused_ops.get(op, 0) for op in group.split("|"))
        if have < want:
            missing.append(f"{group}: {have} < {want}")
    return missing


def _model_class(config: Any, model_dir: Path) -> str:
    names = list(getattr(config, "architectures", None) or ["BertModel"])
    for name in names:
        if name in SUPPORTED_CLASSES:
            return name
    raise ValueError(
        f"{str(model_dir)!r} is a {names} checkpoint; bortfast exports {', '.join(SUPPORTED_CLASSES)}"
    )


def _tokenizer_json(model_dir: Path) -> str | None:
    """The model directory's fast-tokenizer JSON, or None when it has no tokenizer."""
    path = model_dir / "tokenizer.json"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if (model_dir / "vocab.txt").is_file():  # a slow tokenizer saved without tokenizer.json
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        backend = getattr(tok, "backend_tokenizer", None)
        return backend.to_str() if backend is not None else None
    return None


def random_inputs(vocab_size: int, batch: int, seq_len: int, seed: int = 0,
                  type_vocab_size: int = 2) -> dict[str, np.ndarray]:
    """int64 inputs with right padding of varying length (row 0 full length), for tracing and parity checks."""
    rng = np.random.default_rng(seed)
    input_ids = rng.integers(1, vocab_size, size=(batch, seq_len), dtype=np.int64)  # (B, L)
    attention_mask = np.ones((batch, seq_len), dtype=np.int64)
    for row in range(1, batch):
        attention_mask[row, max(1, seq_len - row * max(1, seq_len // (batch + 1))):] = 0
    input_ids[attention_mask == 0] = 0
    token_type_ids = np.zeros((batch, seq_len), dtype=np.int64)
    if type_vocab_size > 1:
        token_type_ids[:, seq_len // 2:] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(-1, a.shape[-1]).astype(np.float64)
    b = b.reshape(-1, b.shape[-1]).astype(np.float64)
    num = (a * b).sum(-1)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12
    return float((num / den).mean())


def to_onnx(
    model_dir: str | Path,
    out_path: str | Path,
    *,
    optimize: bool = True,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    check_parity: bool = True,
    parity_tolerance: float = 1e-4,
    require_full_fusion: bool = True,
    embed_tokenizer: bool = True,
    encoder_only: bool = False,
) -> ExportReport:
    """Export a BERT-family checkpoint directory to one ONNX file for ONNX Runtime.

    ``optimize`` runs ONNX Runtime's transformer optimizer and (with ``require_full_fusion``) raises RuntimeError
    unless every layer's attention, both skip-LayerNorms, the GELU and the embedding LayerNorm are fused.
    ``quantize="int8"`` applies dynamic INT8 quantisation to the weights. With ``check_parity`` the file is run on
    padded random inputs and compared with the torch model: fp32 must agree to ``parity_tolerance`` (max |diff|),
    INT8 is reported as a cosine similarity. The file is written atomically.

    ``encoder_only`` exports the encoder (``BertModel``, output ``last_hidden_state``) of any BERT checkpoint, e.g.
    a masked-LM student without its pretraining head; the report's ``model_class`` says which was written. An
    encoder's file records the directory's sentence pooling and normalisation (sentence-transformers' modules;
    mean pooling, no normalisation for a plain directory), which :class:`bortfast.runtime.Encoder` applies; so is
    an identity-activation ``Dense`` module (:mod:`bortfast.export.dense`: a student in its teacher's space), which
    the runtime applies to the pooled vector (the graph's ``last_hidden_state`` stays the encoder's own width).
    """
    t0 = time.perf_counter()
    model_dir = Path(model_dir)
    out_path = Path(out_path)
    _check_export_args(quantize, opset, parity_tolerance)
    config = load_config(model_dir)
    class_name = "BertModel" if encoder_only else _model_class(config, model_dir)
    output_name = SUPPORTED_CLASSES[class_name][0]

    import onnx

    per_layer = is_per_layer(config)  # layer widths differ: only bortfast's loader builds the model
    model = _load_export_model(model_dir, class_name, per_layer)
    arch = (config.num_hidden_layers, config.num_attention_heads, config.hidden_size, config.intermediate_size)
    report = ExportReport(out_path=str(out_path), model_class=class_name, output_name=output_name,
                          arch=arch, opset=opset, optimized=optimize, quantize=quantize)
    with tempfile.TemporaryDirectory(prefix="bortfast-export-") as tmp:
        current = Path(tmp) / "raw.onnx"
        _trace(model, config, class_name, opset, current)
        if optimize:
            current = _optimize(report, current, Path(tmp) / "optimized.onnx", per_layer, require_full_fusion)
        if quantize == "int8":
            current = _quantize_int8(current, Path(tmp) / "int8.onnx")
        proto = onnx.load(str(current))
        meta = _metadata(config, class_name, output_name, quantize, per_layer, model_dir, embed_tokenizer)
        report.has_tokenizer = "tokenizer_json" in meta
        report.pooling = meta.get("pooling")
        report.normalize = meta["normalize"] == "true" if "normalize" in meta else None
        if "dense" in meta:
            d = json.loads(meta["dense"])
            report.dense = (d["in_features"], d["out_features"])
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = META_PREFIX + key, value
        with atomic_path(out_path) as tmp_out:
            onnx.save(proto, str(tmp_out))
            if check_parity:
                _parity(report, tmp_out, model, config, parity_tolerance)
    report.file_bytes = out_path.stat().st_size
    report.seconds = time.perf_counter() - t0
    return report


def _check_export_args(quantize: str | None, opset: int, parity_tolerance: float) -> None:
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset!r} is not supported: use an integer in [{MIN_OPSET}, {MAX_OPSET}]")
    if parity_tolerance <= 0:
        raise ValueError(f"parity_tolerance must be positive, got {parity_tolerance}")


def _load_export_model(model_dir: Path, class_name: str, per_layer: bool) -> Any:
    import transformers

    from bortfast._base.io import clear_weight_errors
    from bortfast.models.perlayer import load_student

    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    if class_name == "BertModel":  # the encoder: token states only, no pooler (sentence pooling is the runtime's)
        kwargs["add_pooling_layer"] = False
    with clear_weight_errors(model_dir):
        if per_layer:
            return load_student(model_dir, class_name, **kwargs).eval()
        return getattr(transformers, class_name).from_pretrained(model_dir, **kwargs).eval()


def _positional(model: Any) -> Any:
    """``model`` behind positional inputs and one tensor out: the shape the TorchScript exporter and the optimizer
    expect."""
    import torch

    class _Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):  # each (B, L) int64
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             return_dict=False)
            return out[0]

    return _Wrapper(model).eval()  # eval() on the wrapper too: the exporter traces in the wrapper's mode


def _trace(model: Any, config: Any, class_name: str, opset: int, raw_path: Path) -> None:
    """The TorchScript export of ``model`` to ``raw_path``, batch and sequence axes dynamic."""
    import torch

    output_name, output_rank = SUPPORTED_CLASSES[class_name]
    wrapper = _positional(model)
    trace_len = min(16, config.max_position_embeddings)
    sample = random_inputs(config.vocab_size, 2, trace_len, type_vocab_size=config.type_vocab_size)
    sample = {k: torch.from_numpy(v) for k, v in sample.items()}
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    dynamic_axes[output_name] = {0: "batch", 1: "sequence"} if output_rank == 3 else {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python branches
        torch.onnx.export(wrapper, tuple(sample[k] for k in INPUT_NAMES), str(raw_path), dynamo=False,
                          opset_version=opset, input_names=list(INPUT_NAMES), output_names=[output_name],
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


def _optimize(report: ExportReport, raw_path: Path, out: Path, per_layer: bool, require_full_fusion: bool) -> Path:
    """ONNX Runtime's transformer fusions of ``raw_path`` saved to ``out``; the fusion counts go into ``report``."""
    from onnxruntime.transformers.optimizer import optimize_model

    layers, heads, hidden, _ = report.arch
    # Per-layer widths: 0 lets the optimizer read each layer's heads and width off its own graph.
    optimized = optimize_model(str(raw_path), model_type="bert", num_heads=0 if per_layer else heads,
                               hidden_size=0 if per_layer else hidden)
    report.fused_ops = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    report.expected_fusions = expected_fusions(layers)
    missing = check_fusions(report.fused_ops, layers)
    report.fusion_complete = not missing
    if missing and require_full_fusion:
        raise RuntimeError(f"ONNX Runtime optimizer left {report.model_class} {report.arch} partly unfused "
                           f"({'; '.join(missing)}); fused: {report.fused_ops}")
    optimized.save_model_to_file(str(out))
    return out


def quantize_int8(path: str | Path, out: str | Path) -> Path:
    """ONNX Runtime's dynamic INT8 quantisation (``quantize_dynamic``, QInt8 weights) of the file ``path`` into
    ``out``, as :func:`to_onnx` applies it with ``quantize="int8"`` (what a user tries first on a teacher)."""
    return _quantize_int8(Path(path), Path(out))


def _quantize_int8(path: Path, out: Path) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # DefaultTensorType: shape inference cannot type the outputs of com.microsoft fused ops.
    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return out


def _metadata(config: Any, class_name: str, output_name: str, quantize: str | None, per_layer: bool,
              model_dir: Path, embed_tokenizer: bool) -> dict[str, str]:
    """The file's metadata entries (without :data:`META_PREFIX`): what the runtime needs to use it alone."""
    meta = {
        "output": output_name,
        "model_class": class_name,
        "max_positions": str(config.max_position_embeddings),
        "vocab_size": str(config.vocab_size),
        "type_vocab_size": str(config.type_vocab_size),
        "arch": json.dumps([config.num_hidden_layers, config.num_attention_heads, config.hidden_size,
                            config.intermediate_size]),
        "quantize": quantize or "none",
    }
    if per_layer:  # heads and FFN width of every layer (the "arch" entry holds the widest layer)
        meta["per_layer"] = json.dumps(config.bortfast_per_layer)
    if class_name in ("BertForSequenceClassification", "BertForTokenClassification"):
        id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
        meta["id2label"] = json.dumps([id2label.get(i, str(i)) for i in range(config.num_labels)])
        meta["problem_type"] = str(getattr(config, "problem_type", None) or "")
    if output_name == "last_hidden_state":  # the sentence vector as SentenceTransformer(model_dir) makes it
        from bortfast.data.teacher import sentence_config

        sentence = sentence_config(model_dir)
        meta["pooling"], meta["normalize"] = sentence.pooling_spec, "true" if sentence.normalize else "false"
        from bortfast.export.dense import read_dense

        dense = read_dense(model_dir)  # applied by the runtime after pooling, before normalising, as ST does
        if dense is not None:
            meta["dense"] = dense.to_metadata()
    tokenizer_json = _tokenizer_json(model_dir) if embed_tokenizer else None
    if tokenizer_json is not None:
        meta["tokenizer_json"] = tokenizer_json
    return meta


def _parity(report: ExportReport, onnx_path: Path, model: Any, config: Any, tolerance: float) -> None:
    """Compare the ONNX file with the torch model on padded random inputs (fills the report's parity fields)."""
    import onnxruntime as ort
    import torch

    inputs = random_inputs(config.vocab_size, 3, min(23, config.max_position_embeddings), seed=1,
                           type_vocab_size=config.type_vocab_size)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, inputs)[0]
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=False)[0].numpy()
    if got.shape != want.shape:
        raise RuntimeError(f"ONNX output shape {got.shape} != torch output shape {want.shape}")
    report.parity_max_abs_diff = float(np.abs(got - want).max())
    report.parity_cosine = _cosine_rows(got, want)
    if report.quantize is None and not report.parity_max_abs_diff <= tolerance:
        raise RuntimeError(f"ONNX output differs from torch by {report.parity_max_abs_diff:.3g} "
                           f"(tolerance {tolerance:g})")
