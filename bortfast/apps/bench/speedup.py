""":func:`run_speedup`: one speed-up run, its stages in order (models, exports, FLOPs, timings, report), written to
``speedup.json`` and ``speedup.png``."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bortfast._base.io import write_json
from bortfast.apps.bench.config import SpeedupConfig
from bortfast.apps.bench.prepare import arch_json, export_models, flop_counts, prepare_models
from bortfast.apps.bench.report import paper_targets, plot_speedup
from bortfast.apps.bench.timing import same_engine_ratios, time_end_to_end, time_fixed_shapes


def run_speedup(config: SpeedupConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run the benchmark (see :mod:`bortfast.apps.bench`); returns the result written to ``speedup.json``.

    Pass a :class:`SpeedupConfig` or its fields as keyword arguments. Every engine is timed in its own worker
    process (:mod:`bortfast.profile.timing`); torch in this process (export, FLOP counts) runs on ``threads``
    threads for the call and the caller's thread count is restored afterwards.
    """
    from bortfast._base.state import torch_threads

    cfg = config if config is not None else SpeedupConfig(**kwargs)
    with torch_threads(cfg.threads):
        return _run_speedup(cfg)


def _run_speedup(cfg: SpeedupConfig) -> dict[str, Any]:
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="bortfast-bench-") if cfg.work_dir is None else None
    work = Path(cfg.work_dir) if cfg.work_dir is not None else Path(tmp.name)  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    try:
        models = prepare_models(cfg, work)
        export_models(cfg, models, work)
        flops = flop_counts(cfg, models)
        fixed_rows, speedups = time_fixed_shapes(cfg, models)
        same_engine = same_engine_ratios(cfg, models, fixed_rows, flops)
        e2e_rows = time_end_to_end(cfg, models, speedups) if cfg.sentences is not None else []
        result = {
            "claim": "Bort <4,8,1024,768> is 7.9x faster than BERT-base and 20x faster than BERT-large on a CPU "
                     "(de Wynter & Perry 2020, §5)",
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "baseline": f"{models.base_label} {models.teacher_arch}",
            "machine": _machine(cfg, load_before),
            "timing": {"method": "each engine in its own worker process, turns alternating across engines "
                                 "(bortfast.profile.timing)", "fixed": asdict(cfg.timing()),
                       "e2e": asdict(cfg.e2e_timing())},
            "config": {k: v for k, v in cfg.__dict__.items() if k != "sentences"} |
                      {"sentences": None if cfg.sentences is None else len(cfg.sentences)},
            "archs": {"student": arch_json(models.student_arch), "teacher": arch_json(models.teacher_arch),
                      "large": models.large_arch.tuple if models.large_arch else None},
            "exports": {k: {"fused_ops": r.fused_ops, "fusion_complete": r.fusion_complete,
                            "parity_max_abs_diff": r.parity_max_abs_diff, "parity_cosine": r.parity_cosine,
                            "file_bytes": r.file_bytes} for k, r in models.exports.items()},
            "fixed": fixed_rows,
            "speedups": speedups,
            "flops": flops,
            "same_engine": same_engine,
            "e2e": e2e_rows,
            "baseline_key": models.baseline_key,
            "compared": "encoders (last hidden states, no task or MLM head)" if models.encoders else
                        "the models' own heads",
            "targets": paper_targets(cfg, speedups, same_engine) if models.paper_baseline else {},
            "busy": any(r["load"]["busy"] for r in fixed_rows + e2e_rows),
            "seconds": time.perf_counter() - t_start,
        }
        write_json(out_dir / "speedup.json", result)
        plot_speedup(result, out_dir / "speedup.png")
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _machine(cfg: SpeedupConfig, load_before: tuple[float, float, float]) -> dict[str, Any]:
    import onnxruntime as ort
    import torch
    import transformers

    from bortfast.profile.latency import cpu_model

    return {"platform": platform.platform(), "processor": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": cfg.threads, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "torch": torch.__version__, "transformers": transformers.__version__, "onnxruntime": ort.__version__}
