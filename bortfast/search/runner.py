"""Running Algorithm 1 on a machine or across ranks: î for the space, the journal (resume, --overwrite), the
round-robin split of the trainings across ``torch.distributed`` ranks, and the outputs rank 0 writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bortfast._base import dist
from bortfast.search.algorithm import SearchResult, run_algorithm1
from bortfast.search.choice import ChoiceCheck, choose_for_user
from bortfast.search.config import ErrorFn, LatencyProxy, SearchConfig
from bortfast.search.journal import Journal
from bortfast.search.report import PLOT_NAME, RESULT_NAME, write_outputs
from bortfast.space import Arch, PerLayerArch, encoder_flops, param_counts


def latencies(archs: Sequence[Arch | PerLayerArch], proxy: LatencyProxy, *, batch: int, seq_len: int,
              threads: int | None = None, cache_dir: str | os.PathLike | None = None,
              reference: Arch | PerLayerArch | None = None) -> tuple[np.ndarray, str]:
    """î for every arch: FLOPs (``"flops"``) or the fused kernel's latency in ms (``"kernel"``). With a ``reference``
    (the teacher T, which must be one of ``archs``), the kernel times every ξ back to back with T in alternating
    rounds and î(ξ) = its median ratio to T times T's median ms over this profile (:mod:`bortfast.profile.relative`):
    the ratios, which W and speed-up budgets use, do not move with the host's speed."""
    if proxy == "kernel" and reference is not None:
        from bortfast.profile.relative import relative_profile

        others = [a for a in archs if a != reference]
        rel = relative_profile(others, reference, batch=batch, seq_len=seq_len, threads=threads, cache_dir=cache_dir)
        t_ms = float(np.median([r.reference_ms for r in rel])) if rel else 1.0
        ratio = dict(zip(others, (r.ratio for r in rel)))
        return np.array([t_ms * ratio.get(a, 1.0) for a in archs], dtype=np.float64), "ms"
    if any(isinstance(a, PerLayerArch) for a in archs):  # per-layer widths: one arch at a time, no cache
        if proxy == "flops":
            return np.array([a.flops(batch, seq_len) for a in archs], dtype=np.float64), "flops"
        if proxy == "kernel":
            from bortfast.profile import measure_latency

            return np.array([measure_latency(a, batch, seq_len, threads).median_ms for a in archs]), "ms"
    if proxy == "flops":
        return encoder_flops(list(archs), batch, seq_len).astype(np.float64), "flops"
    if proxy == "kernel":
        try:
            from bortfast.profile import profile_space
        except ImportError as err:
            raise ValueError(f"latency='kernel' needs bortfast.profile (the fused encoder kernel): {err}; "
                             f"use latency='flops'") from None
        ms = profile_space(list(archs), batch=batch, seq_len=seq_len, threads=threads, cache_dir=cache_dir,
                           progress=False)
        return np.asarray(ms, dtype=np.float64), "ms"
    raise ValueError(f"latency must be 'kernel' or 'flops', got {proxy!r}")



def _is_own_output(file: Path) -> bool:
    """A journal whose first line is bortfast's header, or a search.json with bortfast's result keys."""
    try:
        if file.suffix == ".jsonl":
            with open(file, encoding="utf-8") as f:
                return json.loads(f.readline()).get("kind") == "header"
        return {"candidates", "best"} <= set(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _clear_outputs(out_dir: Path) -> None:
    """--overwrite: remove this search's journals, result and plot; refuse if one of them is not bortfast's."""
    files = [f for f in [*out_dir.glob("journal*.jsonl"), out_dir / RESULT_NAME] if f.is_file()]
    foreign = [f.name for f in files if f.is_symlink() or not _is_own_output(f)]
    if foreign:
        raise FileExistsError(f"{out_dir}: {', '.join(foreign)} not written by a bortfast search, so nothing was "
                              f"removed; use another output directory")
    if (out_dir / PLOT_NAME).is_file() and not files:
        raise FileExistsError(f"{out_dir / PLOT_NAME} has no bortfast search beside it, so nothing was removed; "
                              f"use another output directory")
    for file in [*files, out_dir / PLOT_NAME]:
        if file.is_file():
            file.unlink()



def run_search(archs: Sequence[Arch | PerLayerArch], teacher_arch: Arch, error_fn: ErrorFn, cfg: SearchConfig,
               settings: Mapping[str, Any], *, out_dir: str | os.PathLike | None = None,
               teacher_layers: Sequence[Sequence[int] | None] | None = None,
               check: ChoiceCheck | None = None) -> SearchResult:
    """Algorithm 1 over ``archs`` below ``teacher_arch`` with ê = ``error_fn``: p̂ and î for the space (rank 0
    measures latencies, every rank uses them), the journal in ``out_dir`` (resume; ``cfg.overwrite`` clears it),
    the trainings split across the ranks of an initialised ``torch.distributed`` group, and ``search.json`` /
    ``pareto.png`` written by rank 0. ``settings`` goes into the journal header and the result;
    ``teacher_layers`` (per-layer ξ) is recorded on each candidate. ``check`` re-measures latency-budget finalists
    in the deployment engine (:func:`choose_for_user`; rank 0 alone)."""
    rank, world = dist.rank_world()
    if cfg.eps > len(archs):  # before any (possibly slow) latency measurement
        raise ValueError(f"eps must be in [1, |Xi| = {len(archs)}], got {cfg.eps}")
    all_archs = [*archs, teacher_arch]
    if any(isinstance(a, PerLayerArch) for a in archs):
        p_all = np.array([a.param_count(cfg.param_kind) for a in all_archs], dtype=np.int64)
        f_all = np.array([a.flops(cfg.batch, cfg.seq_len) for a in all_archs], dtype=np.int64)
    else:
        p_all = param_counts(all_archs, cfg.param_kind)
        f_all = encoder_flops(all_archs, cfg.batch, cfg.seq_len)
    cache = Path(out_dir) / "latency-cache" if out_dir is not None else None
    if rank == 0:
        i_all, unit = latencies(all_archs, cfg.latency, batch=cfg.batch, seq_len=cfg.seq_len, threads=cfg.threads,
                                cache_dir=cache, reference=teacher_arch)
    if world > 1:
        # Measured latencies differ from process to process: rank 0 measures (alone, so the ranks do not slow
        # each other's timings down) and every rank uses its numbers.
        i_all, unit = dist.broadcast(i_all if rank == 0 else None, unit if rank == 0 else None)
    for name, values in (("params", p_all), ("latency", i_all)):
        bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
        if bad.size:
            raise ValueError(f"{name} of {all_archs[bad[0]]} is {float(values[bad[0]])!r}; it must be finite")

    journal = None
    if out_dir is not None:
        out = Path(out_dir)
        if cfg.overwrite and rank == 0:
            _clear_outputs(out)
        if world > 1:
            dist.barrier()  # nobody reads the journals before rank 0 has cleared them
        journal = Journal(out, settings, rank=rank)
        if world > 1:
            dist.barrier()  # every rank has read the journals before anyone appends

    result = run_algorithm1(
        archs, p_all[:-1], i_all[:-1], float(p_all[-1]), float(i_all[-1]), error_fn,
        eps=cfg.eps, thetas=cfg.thetas, teacher=teacher_arch, flops=f_all[:-1], journal=journal, rank=rank,
        world_size=world, gather=dist.all_gather if world > 1 else None, eps_small=cfg.eps_small,
        pareto_delta=cfg.pareto_delta, latency_unit=unit, progress=cfg.progress and rank == 0, settings=settings,
    )
    for c, layers in zip(result.candidates, teacher_layers or ()):
        c.teacher_layers = None if layers is None else list(layers)
    result = _choose(result, cfg, check, rank, world)
    if rank == 0 and out_dir is not None:
        write_outputs(result, out_dir)
    return result


def _choose(result: SearchResult, cfg: SearchConfig, check: ChoiceCheck | None, rank: int,
            world: int) -> SearchResult:
    """:func:`choose_for_user` on rank 0 (a check times engines: alone), its choice broadcast to every rank."""
    import dataclasses

    def choose() -> SearchResult:
        return choose_for_user(result, max_latency=cfg.max_latency, min_speedup=cfg.min_speedup,
                               max_error=cfg.max_error, check=check)

    if world == 1:
        return choose()
    picked: Any = None
    if rank == 0:
        try:
            chosen = choose()
            picked = (chosen.best, chosen.selection, chosen.error_param_spearman, chosen.candidates[chosen.best])
        except ValueError as err:
            picked = str(err)  # every rank raises the same message instead of waiting
    (picked,) = dist.broadcast(picked)
    if isinstance(picked, str):
        raise ValueError(picked)
    best, selection, rho, c = picked  # ξ* may be a head-count twin carrying its finalist's ê (choice.TWINS)
    candidates = list(result.candidates)
    candidates[best] = c
    return dataclasses.replace(result, candidates=candidates, best=best, best_theta=c.theta, best_w=c.w,
                               selection=selection, error_param_spearman=rho)
