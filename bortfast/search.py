"""Algorithm 1 of the Bort paper (de Wynter & Perry 2020, §2; the FPTAS of de Wynter 2020, arXiv 2010.08512).

Given a search space Ξ, the maximum point T (the teacher), hyperparameter sets Θ and an interval size ε:

1. p̂ (exact parameter counts, C++ cost model) and î (FLOPs, or the median latency of bortfast's fused C++ encoder
   kernel) for every ξ ∈ Ξ and for T;
2. sort Ξ by p̂ and take one pivot every ε positions (C++ :func:`bortfast.selection.interval_pivots`);
3. for every pivot and every θ ∈ Θ train a fresh student for ``steps`` steps by distillation from T and record ê,
   the distillation loss on a fixed held-out batch; compute W (C++);
4. return argmax W over (ξ, θ), the whole table and the Pareto front of (p̂, î, ê) over the trained candidates.

Cost: |Θ|·⌈|Ξ|/ε⌉ short trainings; everything else takes milliseconds.

The search itself is the pure function :func:`run_algorithm1`: it takes the candidates' p̂ and î as arrays and the
error function ê(ξ, θ) as an argument (no trainer inside the search). :func:`extract` wires the teacher, corpus,
profiler and :func:`bortfast.distill.short_train_error` into it and writes ``search.json``, ``pareto.png`` and a
journal that makes an interrupted search resumable. Under ``torchrun`` the pivots are split round-robin across
ranks and the results gathered with ``torch.distributed.all_gather_object``; rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bortfast import selection
from bortfast._io import append_jsonl, atomic_path, read_jsonl, write_json
from bortfast.space import Arch, ModelKind, SearchSpace, encoder_flops, param_counts

LatencyProxy = Literal["kernel", "flops"]
ErrorFn = Callable[[Arch, Mapping[str, Any]], float]

JOURNAL_NAME = "journal.jsonl"
RESULT_NAME = "search.json"
PLOT_NAME = "pareto.png"

# Settings that determine a single ê(ξ, θ); a journal written under different values cannot be reused. The other
# settings (ε, Θ, the latency proxy) only decide *which* (ξ, θ) get trained, so their journal entries stay valid.
ERROR_SETTINGS = ("teacher", "teacher_arch", "corpus", "steps", "seq_len", "train_batch_size", "seed",
                  "heldout_batch_size", "vocab_fingerprint", "corpus_fingerprint", "error_fn")


# ----------------------------------------------------------------------------------------------------- results
@dataclass
class Candidate:
    """One ξ of the search space with its metrics; ``error``/``theta``/``w`` are set only for trained pivots."""

    arch: Arch  # ξ = <D, A, H, I> (with the teacher's vocabulary)
    params: int  # p̂: exact trainable parameters
    flops: int  # encoder-forward FLOPs for (batch, seq_len)
    latency: float  # î: median kernel latency in ms, or FLOPs when latency="flops"
    pivot: bool  # selected by the interval rule (trained)
    error: float | None = None  # ê of the θ with the largest W for this ξ (= the smallest ê over Θ)
    theta: dict[str, Any] | None = None  # that θ
    w: float | None = None  # W(ξ) under that θ


@dataclass
class Trial:
    """One short training: candidate index, θ index, ê and W."""

    candidate: int
    theta: int
    error: float
    w: float


@dataclass
class SearchResult:
    """Everything Algorithm 1 produced; ``search.json`` is ``dataclasses.asdict`` of this."""

    settings: dict[str, Any]  # ε, Θ, steps, seed, latency proxy, teacher, corpus, ...
    teacher: Arch  # T
    teacher_params: int  # p(T)
    teacher_latency: float  # i(T), same proxy and unit as the candidates' latency
    latency_unit: str  # "ms" (kernel) or "flops"
    candidates: list[Candidate]  # every ξ ∈ Ξ, in the space's order
    trials: list[Trial]  # every (pivot, θ), in the order (pivot position in p̂ order, θ)
    best: int  # index into candidates of ξ*
    best_theta: dict[str, Any]  # θ* of the best trial
    best_w: float  # W(ξ*, θ*)
    pareto_front: list[int]  # candidate indices: exact Pareto front of (p̂, î, ê) over the trained candidates
    approx_pareto_front: list[int] | None  # (1+δ)-approximate front (δ = settings["pareto_delta"]); None if ê ≤ 0
    trainings: int  # number of short trainings = |Θ|·⌈|Ξ|/ε⌉

    @property
    def best_arch(self) -> Arch:
        """ξ*."""
        return self.candidates[self.best].arch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        data = dict(data)
        data["teacher"] = Arch(**data["teacher"])
        data["candidates"] = [Candidate(**{**c, "arch": Arch(**c["arch"])}) for c in data["candidates"]]
        data["trials"] = [Trial(**t) for t in data["trials"]]
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SearchResult:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def top(self, k: int = 10) -> list[Candidate]:
        """The k trained candidates with the largest W (ties: lower index first)."""
        trained = [c for c in self.candidates if c.w is not None]
        order = sorted(range(len(trained)), key=lambda j: (-trained[j].w, j))
        return [trained[j] for j in order[:k]]


# ----------------------------------------------------------------------------------------------------- journal
def _theta_key(theta: Mapping[str, Any]) -> str:
    return json.dumps(dict(theta), sort_keys=True)


class Journal:
    """Append-only record of finished short trainings, one JSON line each (fsync'd), so a killed search resumes.

    The first line of every journal file is a header with the run's settings. Opening a directory whose journal
    was written under different error-determining settings (:data:`ERROR_SETTINGS`) raises ``ValueError`` naming
    them. Each rank appends to its own file (``journal.jsonl`` for rank 0, ``journal.rank{r}.jsonl`` otherwise)
    and reads all of them, so a run may resume under a different number of ranks. ``directory=None`` keeps the
    journal in memory only.
    """

    def __init__(self, directory: str | os.PathLike | None, settings: Mapping[str, Any], *, rank: int = 0) -> None:
        self.settings = dict(settings)
        self.results: dict[tuple[tuple[int, ...], str], float] = {}
        self.path: Path | None = None
        if directory is None:
            return
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / (JOURNAL_NAME if rank == 0 else f"journal.rank{rank}.jsonl")
        self._repair(self.path)
        for file in sorted(directory.glob("journal*.jsonl")):
            records = read_jsonl(file)
            if not records:
                continue
            header = records[0]
            if header.get("kind") != "header":
                raise ValueError(f"{file} is not a bortfast search journal (first line is not a header)")
            self._check_compatible(file, header.get("settings", {}))
            for rec in records[1:]:
                self.results[(tuple(rec["arch"]), _theta_key(rec["theta"]))] = float(rec["error"])
        if not self.path.exists() or self.path.stat().st_size == 0:
            append_jsonl(self.path, {"kind": "header", "settings": self.settings})

    @staticmethod
    def _repair(path: Path) -> None:
        """Cut a torn last line (the process died mid-write) so the next append starts on a fresh line."""
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def _check_compatible(self, file: Path, old: Mapping[str, Any]) -> None:
        diffs = [f"{k}: journal has {old.get(k)!r}, this run has {self.settings.get(k)!r}"
                 for k in ERROR_SETTINGS if _jsonable(old.get(k)) != _jsonable(self.settings.get(k))]
        if diffs:
            raise ValueError(
                f"{file} was written by a search with different settings ({'; '.join(diffs)}); use a fresh "
                f"output directory or --overwrite to discard it"
            )

    def get(self, arch: Arch, theta: Mapping[str, Any]) -> float | None:
        return self.results.get((arch.tuple, _theta_key(theta)))

    def record(self, arch: Arch, theta: Mapping[str, Any], error: float, seconds: float) -> None:
        self.results[(arch.tuple, _theta_key(theta))] = error
        if self.path is not None:
            append_jsonl(self.path, {"kind": "trial", "arch": list(arch.tuple), "theta": dict(theta),
                                     "error": error, "seconds": round(seconds, 3)})

    def __len__(self) -> int:
        return len(self.results)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# ----------------------------------------------------------------------------------------------------- Algorithm 1
def _check_finite(name: str, values: np.ndarray, archs: Sequence[Arch]) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"{name} of candidate {k} {archs[k]} is {float(values[k])!r}: every {name} must be finite")
    neg = np.flatnonzero(values < 0)
    if neg.size:
        k = int(neg[0])
        raise ValueError(f"{name} of candidate {k} {archs[k]} is {float(values[k])!r}: every {name} must be >= 0")


def pivot_indices(params: Sequence[float] | np.ndarray, eps: int) -> np.ndarray:
    """Candidate indices trained by Algorithm 1: every ``eps``-th position in increasing-p̂ order."""
    return selection.interval_pivots(np.asarray(params, dtype=np.float64), eps)


def run_algorithm1(
    archs: Sequence[Arch],
    params: Sequence[float] | np.ndarray,
    latency: Sequence[float] | np.ndarray,
    teacher_params: float,
    teacher_latency: float,
    error_fn: ErrorFn,
    *,
    eps: int,
    thetas: Sequence[Mapping[str, Any]],
    teacher: Arch | None = None,
    flops: Sequence[int] | np.ndarray | None = None,
    journal: Journal | None = None,
    rank: int = 0,
    world_size: int = 1,
    gather: Callable[[dict], list[dict]] | None = None,
    eps_small: float = 1e-12,
    pareto_delta: float = 0.1,
    latency_unit: str = "flops",
    progress: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Algorithm 1 over precomputed p̂ and î, with ê from ``error_fn(arch, theta)``.

    Pivots are :func:`pivot_indices`; the (pivot, θ) trainings are ordered by pivot position, then θ, and rank
    ``rank`` of ``world_size`` runs those whose pivot position ≡ rank (mod world_size). ``gather`` (e.g.
    ``torch.distributed.all_gather_object``) takes this rank's ``{(candidate, θ index): ê}`` and returns every
    rank's dict. Finished trainings are looked up in / appended to ``journal``. ê must be finite and ≥ 0. The
    result is identical for any ``world_size`` and for a resumed run, given a deterministic ``error_fn``.
    """
    archs = list(archs)
    n = len(archs)
    if n == 0:
        raise ValueError("the search space is empty")
    if isinstance(eps, bool) or not isinstance(eps, (int, np.integer)):
        raise TypeError(f"eps must be an int, got {eps!r}")
    if not 1 <= eps <= n:
        raise ValueError(f"eps must be in [1, |Xi| = {n}], got {eps}")
    thetas = [dict(t) for t in thetas]
    if not thetas:
        raise ValueError("thetas (the hyperparameter sets) is empty")
    if len({_theta_key(t) for t in thetas}) != len(thetas):
        raise ValueError(f"thetas has duplicates: {thetas}")
    if not (isinstance(world_size, int) and world_size >= 1 and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    p = np.asarray(params, dtype=np.float64)
    i = np.asarray(latency, dtype=np.float64)
    if p.shape != (n,) or i.shape != (n,):
        raise ValueError(f"params and latency must have shape ({n},), got {p.shape} and {i.shape}")
    _check_finite("params", p, archs)
    _check_finite("latency", i, archs)
    for name, value in (("teacher_params", teacher_params), ("teacher_latency", teacher_latency)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and positive, got {value!r}")
    if not np.any((p < teacher_params) & (i < teacher_latency)):
        raise ValueError(
            f"no architecture in the space is both smaller (p < {teacher_params:g}) and faster "
            f"(i < {teacher_latency:g}) than the teacher, so every W is 0; use a space below the teacher"
        )
    f = np.asarray(flops if flops is not None else np.zeros(n), dtype=np.int64)
    journal = journal if journal is not None else Journal(None, settings or {})

    pivots = pivot_indices(p, eps)
    jobs = [(pos, int(k), t) for pos, k in enumerate(pivots) for t in range(len(thetas))]
    mine = [job for job in jobs if job[0] % world_size == rank]
    errors: dict[tuple[int, int], float] = {}
    bar = _progress(mine, progress)
    for _, k, t in bar:
        arch, theta = archs[k], thetas[t]
        error = journal.get(arch, theta)
        if error is None:
            start = time.perf_counter()
            error = float(error_fn(arch, theta))
            if not (math.isfinite(error) and error >= 0):
                raise ValueError(f"error (distillation loss) of {arch} under theta={theta} is {error!r}; "
                                 f"it must be finite and >= 0")
            journal.record(arch, theta, error, time.perf_counter() - start)
        errors[(k, t)] = error
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{arch} e={error:.4g}")
    if gather is not None:
        merged: dict[tuple[int, int], float] = {}
        for part in gather(errors):
            merged.update(part)
        errors = merged
    missing = [(archs[k], thetas[t]) for _, k, t in jobs if (k, t) not in errors]
    if missing:
        raise RuntimeError(f"{len(missing)} trainings missing after gathering, e.g. {missing[0]}")

    # W for every (pivot, θ), then argmax (C++; ties -> earliest trial).
    trial_k = np.array([k for _, k, _ in jobs], dtype=np.int64)
    trial_e = np.array([errors[(k, t)] for _, k, t in jobs], dtype=np.float64)
    trial_w = selection.w_coefficients(p[trial_k], i[trial_k], trial_e, teacher_params, teacher_latency, eps_small)
    trials = [Trial(candidate=k, theta=t, error=float(e), w=float(w))
              for (_, k, t), e, w in zip(jobs, trial_e, trial_w)]
    best_trial = trials[selection.argmax(trial_w)]

    candidates = [Candidate(arch=a, params=int(p[k]), flops=int(f[k]), latency=float(i[k]), pivot=False)
                  for k, a in enumerate(archs)]
    for trial in trials:  # per ξ keep its best θ: largest W, then smallest ê (matters when W = 0), then earliest
        c = candidates[trial.candidate]
        c.pivot = True
        if c.w is None or trial.w > c.w or (trial.w == c.w and trial.error < c.error):
            c.error, c.theta, c.w = trial.error, thetas[trial.theta], trial.w

    trained = [int(k) for k in pivots]
    points = np.array([[p[k], i[k], candidates[k].error] for k in trained], dtype=np.float64).reshape(-1, 3)
    front = [trained[j] for j in selection.pareto_front(points)]
    approx = ([trained[j] for j in selection.approx_pareto_front(points, pareto_delta)]
              if (points > 0).all() else None)
    # world_size is deliberately not recorded: the result does not depend on how many ranks computed it.
    run_settings = {"eps": int(eps), "thetas": thetas, "eps_small": eps_small, "pareto_delta": pareto_delta}
    run_settings.update(settings or {})
    return SearchResult(
        settings=run_settings,
        teacher=teacher if teacher is not None else Arch(1, 1, 1, 1),
        teacher_params=int(teacher_params),
        teacher_latency=float(teacher_latency),
        latency_unit=latency_unit,
        candidates=candidates,
        trials=trials,
        best=best_trial.candidate,
        best_theta=thetas[best_trial.theta],
        best_w=best_trial.w,
        pareto_front=sorted(front),
        approx_pareto_front=sorted(approx) if approx is not None else None,
        trainings=len(jobs),
    )


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="pivots", unit="training", dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------------- reporting
def format_top(result: SearchResult, k: int = 10) -> str:
    """A plain-text table of the k trained candidates with the largest W."""
    unit = result.latency_unit
    head = f"{'rank':>4}  {'xi = <D, A, H, I>':<22} {'params':>12} {'FLOPs':>14} {'i (' + unit + ')':>12} " \
           f"{'error':>9} {'W':>10}  theta"
    lines = [head, "-" * len(head)]
    for r, c in enumerate(result.top(k), 1):
        star = " *" if c.arch == result.best_arch else ""
        lines.append(f"{r:>4}  {str(c.arch):<22} {c.params:>12,} {c.flops:>14,} {c.latency:>12.4g} "
                     f"{c.error:>9.4f} {c.w:>10.4g}  {json.dumps(c.theta)}{star}")
    return "\n".join(lines)


def plot_pareto(result: SearchResult, path: str | os.PathLike) -> None:
    """p̂ vs î for every ξ (grey: untrained), trained ones coloured by ê, the Pareto front circled, ξ* starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = result.candidates
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=120)
    untrained = [c for c in cands if c.error is None]
    trained = [c for c in cands if c.error is not None]
    if untrained:
        ax.scatter([c.params for c in untrained], [c.latency for c in untrained], s=10, c="0.8",
                   label="not trained")
    sc = ax.scatter([c.params for c in trained], [c.latency for c in trained], s=28,
                    c=[c.error for c in trained], cmap="viridis_r", label="pivots (colour = error)")
    fig.colorbar(sc, ax=ax, label="distillation error ê")
    front = [cands[k] for k in result.pareto_front]
    ax.scatter([c.params for c in front], [c.latency for c in front], s=90, facecolors="none",
               edgecolors="tab:red", linewidths=1.4, label="Pareto front (p̂, î, ê)")
    best = result.best_arch
    bc = cands[result.best]
    ax.scatter([bc.params], [bc.latency], marker="*", s=320, c="tab:orange", edgecolors="k",
               label=f"ξ* = {best}", zorder=5)
    ax.scatter([result.teacher_params], [result.teacher_latency], marker="X", s=120, c="k",
               label=f"teacher T = {result.teacher}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters p̂")
    ax.set_ylabel("FLOPs" if result.latency_unit == "flops" else f"latency î ({result.latency_unit})")
    ax.set_title(f"Algorithm 1: ε = {result.settings.get('eps')}, {result.trainings} trainings")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def write_outputs(result: SearchResult, out_dir: str | os.PathLike) -> None:
    """``search.json`` and ``pareto.png`` into ``out_dir`` (atomically)."""
    out_dir = Path(out_dir)
    result.save(out_dir / RESULT_NAME)
    plot_pareto(result, out_dir / PLOT_NAME)


# ----------------------------------------------------------------------------------------------------- extract
def latencies(archs: Sequence[Arch], proxy: LatencyProxy, *, batch: int, seq_len: int, threads: int | None = None,
              cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, str]:
    """î for every arch: FLOPs (``"flops"``) or the fused kernel's median latency in ms (``"kernel"``)."""
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


def _dist_info() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(obj: dict) -> list[dict]:
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def _broadcast(*objs: Any) -> list[Any]:
    import torch.distributed as dist

    box = list(objs)
    dist.broadcast_object_list(box, src=0)
    return box


def _barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


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


@dataclass(frozen=True)
class SearchConfig:
    """Settings of :func:`extract` besides the teacher, corpus and space (also the CLI's options)."""

    eps: int = 4  # ε: one pivot every eps positions of the p̂ order (1 = exhaustive)
    steps: int = 3  # s: optimiser steps per short training
    thetas: tuple[dict[str, Any], ...] = ({"lr": 1e-4},)  # Θ: keyword sets for short_train_error (lr, ...)
    latency: LatencyProxy = "kernel"  # î proxy: fused-kernel median latency or FLOPs
    batch: int = 1  # B for î (latency / FLOPs)
    seq_len: int = 128  # L for î and the length of the corpus blocks the students train on
    train_batch_size: int = 8  # sequences per short-training step
    heldout_batch_size: int = 32  # held-out sequences ê is measured on
    seed: int = 0  # seeds every student, the masking and the corpus split
    threads: int | None = None  # threads for the latency kernel (None: the profiler's default)
    param_kind: ModelKind = "encoder+pooler"  # which parameter count p̂ is (the paper's 56M for Bort)
    eps_small: float = 1e-12  # added to ê in W's denominator
    pareto_delta: float = 0.1  # δ of the approximate Pareto front
    max_blocks: int | None = None  # keep only this many corpus blocks (quick runs)
    overwrite: bool = False  # discard an existing journal / result in out_dir
    progress: bool = False  # tqdm bar over the trainings (rank 0)

    def __post_init__(self) -> None:
        for name in ("eps", "steps", "batch", "seq_len", "train_batch_size", "heldout_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if self.latency not in ("kernel", "flops"):
            raise ValueError(f"latency must be 'kernel' or 'flops', got {self.latency!r}")
        if not self.thetas:
            raise ValueError("thetas (the hyperparameter sets) is empty")
        object.__setattr__(self, "thetas", tuple(dict(t) for t in self.thetas))


def extract(
    teacher: Any,
    corpus: Any,
    space: SearchSpace | Sequence[Arch] | str = "below-teacher",
    *,
    out_dir: str | os.PathLike | None = None,
    config: SearchConfig | None = None,
    error_fn: ErrorFn | None = None,
    **overrides: Any,
) -> SearchResult:
    """Run Algorithm 1 for a teacher on a corpus and return (and, given ``out_dir``, save) the result.

    ``teacher``: a directory / hub id (loaded with :func:`bortfast.distill.load_teacher`) or a loaded ``Teacher``.
    ``corpus``: text file(s) / directories / ``hf:`` names (:func:`bortfast.distill.load_corpus`) or a ``Corpus``.
    ``space``: a :class:`SearchSpace`, a list of :class:`Arch`, or ``"below-teacher"`` / ``"bert-paper"`` (a preset
    takes the teacher's vocabulary). Settings come from ``config`` and keyword overrides of its fields (``eps``,
    ``steps``, ``thetas``, ``latency``, ``batch``, ``seq_len``, ``seed``, ...). ``error_fn`` replaces the short
    distillation (tests, science checks); by default ê = :func:`bortfast.distill.short_train_error`.

    Under an initialised ``torch.distributed`` process group the trainings are split across ranks; every rank
    returns the full result and rank 0 writes ``search.json``, ``pareto.png`` and prints the top-10 table.
    """
    from bortfast import distill

    cfg = dataclasses.replace(config or SearchConfig(), **overrides)
    rank, world = _dist_info()
    if teacher is None or (isinstance(teacher, (str, os.PathLike)) and not str(teacher)):
        raise ValueError("a teacher (directory or hub id) is required")
    if corpus is None or (isinstance(corpus, (str, os.PathLike, list, tuple)) and not corpus):
        raise ValueError("a corpus (text files, directories or hf: dataset names) is required")
    t = teacher if isinstance(teacher, distill.Teacher) else distill.load_teacher(teacher)
    if cfg.seq_len > t.max_seq_len:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the teacher's max sequence length {t.max_seq_len}")
    if isinstance(corpus, distill.Corpus):
        c = corpus
        if c.seq_len != cfg.seq_len:
            raise ValueError(f"the corpus has seq_len={c.seq_len} but the search uses seq_len={cfg.seq_len}")
    else:
        paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
        for path in paths:
            if not str(path).startswith("hf:") and not Path(path).exists():
                raise FileNotFoundError(f"corpus path {str(path)!r} does not exist")
        c = distill.load_corpus(paths, t.tokenizer, seq_len=cfg.seq_len, seed=cfg.seed, max_blocks=cfg.max_blocks)

    archs = _space_archs(space, t)
    if cfg.eps > len(archs):  # before any (possibly slow) latency measurement
        raise ValueError(f"eps must be in [1, |Xi| = {len(archs)}], got {cfg.eps}")
    T = t.arch
    all_archs = [*archs, T]
    p_all = param_counts(all_archs, cfg.param_kind)
    f_all = encoder_flops(all_archs, cfg.batch, cfg.seq_len)
    cache = Path(out_dir) / "latency-cache" if out_dir is not None else None
    if rank == 0:
        i_all, unit = latencies(all_archs, cfg.latency, batch=cfg.batch, seq_len=cfg.seq_len, threads=cfg.threads,
                                cache_dir=cache)
    if world > 1:
        # Measured latencies differ from process to process: rank 0 measures (alone, so the ranks do not slow
        # each other's timings down) and every rank uses its numbers.
        i_all, unit = _broadcast(i_all if rank == 0 else None, unit if rank == 0 else None)
    for name, values in (("params", p_all), ("latency", i_all)):
        bad = np.flatnonzero(~np.isfinite(values.astype(np.float64)))
        if bad.size:
            raise ValueError(f"{name} of {all_archs[bad[0]]} is {float(values[bad[0]])!r}; it must be finite")

    settings = {
        "teacher": str(getattr(t, "name", teacher)),
        "teacher_arch": list(T.tuple),
        "teacher_kind": t.kind,
        "vocab_fingerprint": t.vocab_fingerprint,
        "corpus": list(c.sources),
        "corpus_fingerprint": c.fingerprint,
        "space": space if isinstance(space, str) else getattr(space, "name", "custom"),
        "space_size": len(archs),
        "steps": cfg.steps,
        "latency": cfg.latency,
        "batch": cfg.batch,
        "seq_len": cfg.seq_len,
        "train_batch_size": cfg.train_batch_size,
        "heldout_batch_size": cfg.heldout_batch_size,
        "seed": cfg.seed,
        "param_kind": cfg.param_kind,
        "error_fn": "short_train_error" if error_fn is None else getattr(error_fn, "__name__", "custom"),
    }
    if error_fn is None:
        def error_fn(arch: Arch, theta: Mapping[str, Any]) -> float:
            return distill.short_train_error(arch, t, c, steps=cfg.steps, batch_size=cfg.train_batch_size,
                                             seed=cfg.seed, heldout_batch_size=cfg.heldout_batch_size, **theta)

    journal = None
    if out_dir is not None:
        out = Path(out_dir)
        if cfg.overwrite and rank == 0:
            _clear_outputs(out)
        if world > 1:
            _barrier()  # nobody reads the journals before rank 0 has cleared them
        journal = Journal(out, settings, rank=rank)
        if world > 1:
            _barrier()  # every rank has read the journals before anyone appends

    result = run_algorithm1(
        archs, p_all[:-1], i_all[:-1], float(p_all[-1]), float(i_all[-1]), error_fn,
        eps=cfg.eps, thetas=cfg.thetas, teacher=T, flops=f_all[:-1], journal=journal, rank=rank, world_size=world,
        gather=_all_gather if world > 1 else None, eps_small=cfg.eps_small, pareto_delta=cfg.pareto_delta,
        latency_unit=unit, progress=cfg.progress and rank == 0, settings=settings,
    )
    if rank == 0 and out_dir is not None:
        write_outputs(result, out_dir)
    return result


def _space_archs(space: SearchSpace | Sequence[Arch] | str, teacher: Any) -> list[Arch]:
    T = teacher.arch
    if isinstance(space, str):
        if space == "below-teacher":
            space = SearchSpace.below(teacher.config)
        elif space == "bert-paper":
            space = dataclasses.replace(SearchSpace.bert_paper(), vocab_size=T.vocab_size,
                                        max_positions=T.max_positions, type_vocab_size=T.type_vocab_size)
        else:
            raise ValueError(f"space must be 'below-teacher', 'bert-paper' or a SearchSpace, got {space!r}")
    archs = list(space)
    if not archs:
        raise ValueError("the search space is empty")
    for a in archs:
        if not isinstance(a, Arch):
            raise TypeError(f"the search space must hold Arch objects, got {a!r}")
        for name in ("vocab_size", "max_positions", "type_vocab_size"):
            if getattr(a, name) != getattr(T, name):
                raise ValueError(
                    f"search-space architecture {a} has {name}={getattr(a, name)} but the teacher has "
                    f"{name}={getattr(T, name)}; the space must use the teacher's vocabulary"
                )
    return archs


__all__ = [
    "Candidate",
    "Journal",
    "SearchConfig",
    "SearchResult",
    "Trial",
    "extract",
    "format_top",
    "latencies",
    "pivot_indices",
    "plot_pareto",
    "run_algorithm1",
    "write_outputs",
]
