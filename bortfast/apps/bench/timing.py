"""The timings of a speed-up run, every engine in its own worker process (:mod:`bortfast.profile.timing`): (a) the
fixed shapes, (b) the same-engine ratio against the FLOP ratio, (c) end to end on sentences, tokenization included."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from bortfast.apps.bench.config import Models, SpeedupConfig, log_progress
from bortfast.profile.timing import Engine, fixed_feed, ort_session_engine, time_engines, torch_model_engine


def _warn_if_busy(load: dict[str, Any], what: str) -> None:
    """Say on the console, whatever the progress setting, that a timing ran on a busy machine."""
    if load["busy"]:
        print(f"[bortfast bench] warning: the machine was busy while timing {what} (other processes kept "
              f"{load['other_cores']} core(s) busy, {100 * load['steal_fraction']:.1f}% CPU stolen): its figures are "
              f"marked busy and are not a quiet measurement", file=sys.stderr, flush=True)


def fixed_engines(cfg: SpeedupConfig, models: Models, batch: int) -> list[Engine]:
    """The engines of one fixed shape, each to run in its own worker."""
    names = models.names()
    vocab = min(models.student_arch.vocab_size, models.teacher_arch.vocab_size)
    feed = fixed_feed(vocab, batch, cfg.seq_len, cfg.seed + batch)
    engines = [Engine(names["torch_base"], str(models.teacher_dir), torch_model_engine,
                      {"feed": feed, "threads": cfg.threads, "model_dir": str(models.teacher_dir),
                       "encoder_only": models.encoders})]
    if models.large_arch is not None:
        if models.large_dir is not None:
            spec: dict[str, Any] = {"model_dir": str(models.large_dir)}
        else:
            spec = {"config": models.large_arch.to_bert_config().to_dict(), "seed": cfg.seed + 2}
        engines.append(Engine(names["torch_large"], str(models.large_dir or f"random {models.large_arch}"),
                              torch_model_engine, {"feed": feed, "threads": cfg.threads, **spec}))
    for key in ("student_fp32", "student_int8", "teacher_fp32"):
        engines.append(Engine(names[key], str(models.onnx[key]), ort_session_engine,
                              {"path": str(models.onnx[key]), "feed": feed, "threads": cfg.threads,
                               "spinning": cfg.spinning}))
    return engines


def time_fixed_shapes(cfg: SpeedupConfig, models: Models) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(a) every engine at each fixed shape, isolated; rows per engine and the speed-ups over torch."""
    names = models.names()
    rows: list[dict[str, Any]] = []
    speedups: dict[str, float] = {}
    for batch in cfg.batch_sizes:
        log_progress(cfg, f"fixed shape B={batch}, L={cfg.seq_len}, {cfg.threads} threads: each engine in its own "
                  f"process, >= {cfg.rounds} alternating rounds, >= {cfg.min_samples} samples")
        got = time_engines(fixed_engines(cfg, models, batch), cfg.timing(), progress=cfg.progress)
        timings = got["timings"]
        _warn_if_busy(got["load"], f"fixed shape B={batch}")
        base = timings[names["torch_base"]]
        large = timings.get(names["torch_large"])
        for key in ("student_fp32", "student_int8", "teacher_fp32"):
            speedups[f"{key}_vs_{models.baseline_key}_b{batch}"] = base.median_ms / timings[names[key]].median_ms
            if large is not None:
                speedups[f"{key}_vs_torch_large_b{batch}"] = large.median_ms / timings[names[key]].median_ms
        for t in timings.values():
            rows.append(t.summary() | {
                "batch": batch, "seq_len": cfg.seq_len, "times_ms": t.samples_ms,
                "speedup_vs_baseline": base.median_ms / t.median_ms,
                "speedup_vs_baseline_min": base.min_ms / t.min_ms,
                "speedup_vs_torch_large": (large.median_ms / t.median_ms) if large is not None else None,
                "load": got["load"]})
        log_progress(cfg, ", ".join(f"{t.name}: {t.median_ms:.2f} ms (n={t.n})" for t in timings.values()))
    return rows, speedups


def same_engine_ratios(cfg: SpeedupConfig, models: Models, rows: list[dict[str, Any]],
                        flops: dict[str, Any]) -> dict[str, Any]:
    """(b) ORT teacher / ORT student latency against the FLOP ratios, per batch size."""
    names = models.names()

    def median(name: str, batch: int) -> float:
        return next(r["median_ms"] for r in rows if r["engine"] == name and r["batch"] == batch)

    same_engine = {}
    for batch in cfg.batch_sizes:
        ratio = median(names["teacher_fp32"], batch) / median(names["student_fp32"], batch)
        same_engine[f"b{batch}"] = {"latency_ratio": ratio,
                                    "vs_encoder_flop_ratio": ratio / flops["encoder_formula"]["ratio"],
                                    "vs_full_model_flop_ratio": ratio / flops["full_model_counted"]["ratio"]}
    return same_engine


def _torch_e2e_engine(model_dir: str, sentences: list[str], batch_size: int, threads: int,
                      encoder_only: bool = False) -> Callable[[], Any]:
    """HF tokenizer + torch model (with ``encoder_only`` its encoder) in padded batches over all sentences (runs in a
    timing worker)."""
    import torch
    import transformers

    from bortfast.profile.timing import load_torch_model

    torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = load_torch_model(model_dir, encoder_only)
    max_len = model.config.max_position_embeddings

    def run() -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for start in range(0, len(sentences), batch_size):
                batch = tok(sentences[start:start + batch_size], padding=True, truncation=True, max_length=max_len,
                            return_tensors="pt")
                out = model(**batch, return_dict=False)[0]
                outs.append((out if out.ndim == 2 else out[:, 0]).numpy())
        return np.concatenate(outs)

    return run


def _deployed_e2e_engine(onnx_path: str, sentences: list[str], batch_size: int, threads: int, spinning: bool,
                         classifier: bool) -> Callable[[], Any]:
    """:class:`bortfast.runtime.Encoder` / :class:`~bortfast.runtime.Classifier` over all sentences (runs in a
    timing worker)."""
    from bortfast.runtime import Classifier, Encoder

    if classifier:
        deployed = Classifier(onnx_path, threads=threads, batch_size=batch_size, spinning=spinning)
        return lambda: deployed.logits(sentences)
    encoder = Encoder(onnx_path, threads=threads, batch_size=batch_size, spinning=spinning)
    return lambda: encoder.encode(sentences)


def time_end_to_end(cfg: SpeedupConfig, models: Models, speedups: dict[str, float]) -> list[dict[str, Any]]:
    """(c) all sentences, tokenization included: torch teacher vs the deployed student fp32 / INT8, isolated."""
    names = models.names()
    sentences = list(cfg.sentences or [])
    is_classifier = models.exports["student_fp32"].output_name == "logits"
    common = {"sentences": sentences, "batch_size": cfg.e2e_batch_size, "threads": cfg.threads}
    engines = [Engine(names["torch_base"], str(models.teacher_dir), _torch_e2e_engine,
                      {"model_dir": str(models.teacher_dir), "encoder_only": models.encoders, **common})]
    engines += [Engine(names[key], str(models.onnx[key]), _deployed_e2e_engine,
                       {"onnx_path": str(models.onnx[key]), "spinning": cfg.spinning, "classifier": is_classifier,
                        **common})
                for key in ("student_fp32", "student_int8")]
    log_progress(cfg, f"end to end: {len(sentences)} sentences, batch {cfg.e2e_batch_size}, {cfg.e2e_rounds} rounds")
    got = time_engines(engines, cfg.e2e_timing(), progress=cfg.progress,
                       outputs=[e.name for e in engines[1:]] if is_classifier else ())
    timings = got["timings"]
    _warn_if_busy(got["load"], "end to end")
    base = timings[names["torch_base"]].median_ms / 1e3
    rows = []
    for engine in engines:
        t = timings[engine.name]
        row = {"engine": t.name, "sentences": len(sentences), "median_s": t.median_ms / 1e3,
               "min_s": t.min_ms / 1e3, "max_s": t.max_ms / 1e3, "n": t.n, "pid": t.pid,
               "sentences_per_s": len(sentences) / (t.median_ms / 1e3),
               "speedup_vs_baseline": base / (t.median_ms / 1e3), "load": got["load"]}
        if is_classifier and engine.name in got["outputs"]:
            row["predictions"] = np.asarray(got["outputs"][engine.name]).argmax(1).tolist()
        rows.append(row)
    speedups[f"e2e_student_fp32_vs_{models.baseline_key}"] = rows[1]["speedup_vs_baseline"]
    speedups[f"e2e_student_int8_vs_{models.baseline_key}"] = rows[2]["speedup_vs_baseline"]
    return rows
