"""The whole Bort pipeline in one resumable run: search → distil ξ* → (fine-tune) → export → benchmark → report.

This is DESIGN.md §2 end to end (the Bort paper's §3-§5 in order). Each stage writes its outputs into the run
directory and is recorded in ``pipeline.json`` only when it has finished, so re-running the same command skips
finished stages; a stage interrupted half-way resumes through its own mechanism (the search journal, the
distillation checkpoints). A failure is reported with the stage's name and leaves earlier stages' outputs intact.

``bortfast demo`` is :func:`run` on the embedded default: the all-MiniLM-L6-v2 encoder that the ``demo`` extra
installs (an encoder-only teacher, so hidden-state distillation) and a corpus of the installed Python standard
library's docstrings (:mod:`bortfast.data.stdlib`); nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from bortfast._base.io import output_lock
from bortfast.pipeline import stages
from bortfast.pipeline.config import (
    FLAT_NAMES,
    RUN_OUTPUTS,
    STAGE_CONFIGS,
    STAGES,
    STATE_NAME,
    BenchStage,
    DistillStage,
    ExportStage,
    FinetuneStage,
    QualityStage,
    RunConfig,
    SearchStage,
    StageError,
)
from bortfast.pipeline.report import render_summary, speedup_label
from bortfast.pipeline.stages import log
from bortfast.pipeline.state import RunState
from bortfast.space import Arch

__all__ = ["FLAT_NAMES", "RUN_OUTPUTS", "STAGES", "STAGE_CONFIGS", "STATE_NAME", "BenchStage", "DistillStage",
           "ExportStage", "FinetuneStage", "QualityStage", "RunConfig", "RunState", "SearchStage", "StageError",
           "render_summary", "run", "speedup_label"]


def run(config: RunConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run (or resume) the pipeline; return ``pipeline.json``'s content. Pass a :class:`RunConfig` or its fields."""
    cfg = config if config is not None else RunConfig(**kwargs)
    from bortfast._base.state import quiet_transformers

    # per-load reports (e.g. the unused pooler) would drown the stage messages; the caller's level comes back after
    with output_lock(cfg.out_dir, "bortfast run"), quiet_transformers():
        return _run_stages(cfg)


def _check_per_layer_hidden(cfg: RunConfig) -> None:
    """--per-layer-hidden against the teacher's shape before anything is written (a fixed value then resumes)."""
    if not (cfg.search.per_layer and cfg.search.per_layer_hidden):
        return
    from transformers import AutoConfig

    t = Arch.from_config(AutoConfig.from_pretrained(cfg.teacher))
    for h in cfg.search.per_layer_hidden:
        if h > t.hidden or h % t.head_dim:
            raise ValueError(f"--per-layer-hidden {h}: per-layer hidden size {h} must be a multiple of head_dim="
                             f"{t.head_dim} in (0, {t.hidden}] (the teacher's head size and hidden size)")


def _run_stages(cfg: RunConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    _check_per_layer_hidden(cfg)
    state = RunState(cfg)
    outputs = {name: rec["outputs"] for name, rec in state.data["stages"].items()}
    todo = STAGES[:STAGES.index(cfg.until) + 1] if cfg.until else STAGES
    for name in todo:
        if state.done(name):
            log(cfg, f"stage {name}: done earlier, skipped")
            continue
        log(cfg, f"stage {name} ...")
        t0 = time.perf_counter()
        try:
            result = stages.STAGE_FUNCS[name](cfg, out, outputs)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            raise StageError(f"stage '{name}' failed: {type(err).__name__}: {err} (outputs of earlier stages are "
                             f"kept in {out}; re-run the same command to resume)") from err
        outputs[name] = json.loads(json.dumps(result, default=str))
        state.finish(name, outputs[name], time.perf_counter() - t0)
    if cfg.until and cfg.until != STAGES[-1]:
        log(cfg, f"stopped after stage {cfg.until} (--until); re-run without --until to finish")
    elif not cfg.keep_intermediate:
        _remove_intermediate(out)
    return state.data


# What a finished run no longer needs (resume is over): copies and checkpoints, tens of MB beside a few-MB student.
INTERMEDIATE = ("work", "distill/checkpoints", "distill/final")


def _remove_intermediate(out: Path) -> None:
    """Delete the run's own intermediate files once every stage has finished (``--keep-intermediate`` keeps them);
    the deliverables (student, ONNX files, reports) and the logs stay."""
    for rel in INTERMEDIATE:
        parts = [out.joinpath(*rel.split("/")[:k]) for k in range(1, rel.count("/") + 2)]
        if any(p.is_symlink() for p in parts) or not parts[-1].is_dir():
            continue  # never through a link: what it points at is not ours
        shutil.rmtree(parts[-1])
