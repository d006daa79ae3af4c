"""Ship the faster precision: export fp32 and INT8, time both on this CPU, measure how well INT8 agrees with fp32,
and keep INT8 only when it is faster *and* agrees within a tolerance (issue 15, item 4).

Timing goes through :mod:`bortfast.profile.timing` (each session in its own worker process, alternating turns), so
neither precision's thread pool slows the other. Agreement is measured on a sample -- the user's texts when given,
else padded random token ids: for an encoder (``last_hidden_state``) the mean cosine of the mask-weighted mean-pooled
sentence vectors, for a model with ``logits`` the share of (valid) positions whose argmax is the same.

INT8 is ONNX Runtime's dynamic quantisation (``quantize_dynamic``: uint8 activations, int8 weights, U8S8). ORT's
guidance: on x86-64 with AVX2/AVX-512 but without VNNI, U8S8 runs through ``VPMADDUBSW`` and can saturate (use
``reduce_range`` or U8U8 there); with AVX-512 VNNI (the CPU these figures come from) U8S8 is the fast, exact path.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base.checks import check_int, check_positive_ints
from bortfast.profile.timing import (
    DEFAULT_ORT_SPINNING,
    Engine,
    TimingConfig,
    fixed_feed,
    ort_session_engine,
    time_engines,
)


@dataclass(frozen=True)
class PrecisionConfig:
    """How :func:`choose_precision` decides."""

    threads: int = field(default=2, metadata={  # intra-op threads both precisions are timed with (the deployment's)
        "help": "the command's thread budget: ONNX Runtime intra-op threads both precisions are timed with (the "
                "deployment's)"})
    batch: int = 1  # timed input: B sequences of seq_len tokens
    seq_len: int = field(default=128, metadata={"help": "timed input length in tokens (batch 1)"})
    min_speedup: float = field(default=1.05, metadata={  # INT8 must be at least this much faster (ratio of medians)
        "help": "INT8 must be at least this much faster (ratio of median latencies)"})
    min_agreement: float = field(default=0.99, metadata={  # ... and agree at least this well
        "help": "INT8 must agree with fp32 at least this well: cosine (encoder) or prediction agreement "
                "(classifier), 0-1"})
    sample_size: int = 64  # random sample rows when no texts are given
    spinning: bool = DEFAULT_ORT_SPINNING
    seed: int = 0
    timing: TimingConfig = field(default_factory=lambda: TimingConfig(rounds=10, min_samples=30))

    def __post_init__(self) -> None:
        check_positive_ints(self, ("threads", "batch", "seq_len", "sample_size"), "PrecisionConfig.")
        check_int("PrecisionConfig.seed", self.seed, 0)
        if not self.min_speedup > 0:
            raise ValueError(f"PrecisionConfig.min_speedup must be positive, got {self.min_speedup!r}")
        if not 0 <= self.min_agreement <= 1:
            raise ValueError(f"PrecisionConfig.min_agreement must be in [0, 1], got {self.min_agreement!r}")


@dataclass
class PrecisionReport:
    """What :func:`choose_precision` measured and shipped."""

    chosen: str  # "fp32" or "int8"
    reason: str
    out_path: str
    timings: dict[str, dict[str, Any]]  # per precision: median/min/max/n (ms) and the worker pid
    int8_speedup: float  # fp32 median / INT8 median (> 1: INT8 faster)
    agreement_metric: str  # "cosine" (encoder) or "prediction_agreement" (logits)
    agreement: float
    sample: str  # what the agreement was measured on
    config: dict[str, Any]
    exports: dict[str, Any]  # per precision: the ExportReport of to_onnx


def output_agreement(fp32_path: str | Path, int8_path: str | Path, batches: list[dict[str, np.ndarray]]
                     ) -> tuple[str, float]:
    """(metric, value): cosine of mean-pooled sentence vectors (encoders) or argmax agreement (logits), over
    the valid (unpadded) rows of ``batches``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in (fp32_path, int8_path)]
    kind = sessions[0].get_outputs()[0].name
    values: list[np.ndarray] = []
    for batch in batches:
        feed = {i.name: batch[i.name] for i in sessions[0].get_inputs()}
        a, b = (s.run(None, feed)[0] for s in sessions)
        mask = batch["attention_mask"].astype(bool)  # (B, L)
        if kind == "logits":
            same = a.argmax(-1) == b.argmax(-1)  # (B,) or (B, L)
            values.append(same[mask] if same.ndim == 2 else same)
        else:
            m = mask[..., None].astype(np.float64)  # (B, L, 1)
            pa, pb = ((x * m).sum(1) / np.maximum(m.sum(1), 1) for x in (a, b))  # (B, H)
            cos = (pa * pb).sum(-1) / (np.linalg.norm(pa, axis=-1) * np.linalg.norm(pb, axis=-1) + 1e-12)
            values.append(cos)
    metric = "prediction_agreement" if kind == "logits" else "cosine"
    return metric, float(np.concatenate(values).astype(np.float64).mean())


def sample_batches(model_dir: Path, texts: list[str] | None, config: PrecisionConfig) -> tuple[list[dict], str]:
    """The agreement sample: ``texts`` tokenized by the model's tokenizer (batches of 32, padded), else padded
    random token ids."""
    from bortfast.export.onnx import random_inputs
    from bortfast.models.config import load_config

    bert = load_config(model_dir)
    if texts:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        batches = []
        for start in range(0, len(texts), 32):
            enc = tok(texts[start:start + 32], padding=True, truncation=True, max_length=config.seq_len,
                      return_tensors="np")
            batches.append({k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}
                           | {"token_type_ids": np.asarray(enc.get("token_type_ids", np.zeros_like(
                               enc["input_ids"])), dtype=np.int64)})
        return batches, f"{len(texts)} texts"
    rows, length = config.sample_size, min(config.seq_len, bert.max_position_embeddings)
    batches = [random_inputs(bert.vocab_size, min(16, rows - s), length, seed=config.seed + s,
                             type_vocab_size=bert.type_vocab_size) for s in range(0, rows, 16)]
    return batches, f"{rows} random token sequences of up to {length} tokens"


def time_precisions(paths: dict[str, Path], vocab_size: int, config: PrecisionConfig) -> dict[str, Any]:
    """Isolated timings (:class:`~bortfast.profile.timing.Timing`) of each ONNX file on a fixed (B, L) input."""
    feed = fixed_feed(vocab_size, config.batch, config.seq_len, config.seed)
    engines = [Engine(f"ORT {name}", str(path), ort_session_engine,
                      {"path": str(path), "feed": feed, "threads": config.threads, "spinning": config.spinning})
               for name, path in paths.items()]
    timings = time_engines(engines, config.timing)["timings"]
    return {name: timings[f"ORT {name}"] for name in paths}


def decide(int8_speedup: float, agreement: float, config: PrecisionConfig) -> tuple[str, str]:
    """("int8" | "fp32", why)."""
    fast = int8_speedup >= config.min_speedup
    close = agreement >= config.min_agreement
    if fast and close:
        return "int8", (f"INT8 is {int8_speedup:.2f}x faster (>= {config.min_speedup}) and agrees "
                        f"{agreement:.4f} (>= {config.min_agreement})")
    why = [] if fast else [f"INT8 is only {int8_speedup:.2f}x as fast as fp32 (needs >= {config.min_speedup})"]
    why += [] if close else [f"INT8 agrees only {agreement:.4f} with fp32 (needs >= {config.min_agreement})"]
    return "fp32", "; ".join(why)


def choose_precision(model_dir: str | Path, out_path: str | Path, *, config: PrecisionConfig | None = None,
                     texts: list[str] | None = None, **export_kwargs: Any) -> PrecisionReport:
    """Export ``model_dir`` in fp32 and INT8 (:func:`~bortfast.export.to_onnx`, ``export_kwargs`` passed on),
    time both and measure their agreement, and write the chosen one to ``out_path`` (atomically)."""
    from bortfast._base.io import atomic_path
    from bortfast.export.onnx import to_onnx
    from bortfast.models.config import load_config

    config = config or PrecisionConfig()
    model_dir, out_path = Path(model_dir), Path(out_path)
    if export_kwargs.get("quantize") is not None:
        raise ValueError(f"choose_precision decides the quantisation itself; got quantize="
                         f"{export_kwargs['quantize']!r}")
    vocab_size = load_config(model_dir).vocab_size
    with tempfile.TemporaryDirectory(prefix="bortfast-precision-") as tmp:
        paths = {"fp32": Path(tmp) / "fp32.onnx", "int8": Path(tmp) / "int8.onnx"}
        exports = {name: to_onnx(model_dir, path, quantize=None if name == "fp32" else "int8", **export_kwargs)
                   for name, path in paths.items()}
        batches, sample = sample_batches(model_dir, texts, config)
        metric, agreement = output_agreement(paths["fp32"], paths["int8"], batches)
        timings = time_precisions(paths, vocab_size, config)
        speedup = timings["fp32"].median_ms / timings["int8"].median_ms
        chosen, reason = decide(speedup, agreement, config)
        with atomic_path(out_path) as tmp_out:
            shutil.copyfile(paths[chosen], tmp_out)
    exports[chosen].out_path = str(out_path)
    return PrecisionReport(chosen=chosen, reason=reason, out_path=str(out_path),
                           timings={k: t.summary() for k, t in timings.items()}, int8_speedup=speedup,
                           agreement_metric=metric, agreement=agreement, sample=sample,
                           config=asdict(config), exports={k: asdict(r) for k, r in exports.items()})
