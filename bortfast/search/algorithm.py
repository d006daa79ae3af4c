"""Algorithm 1 as a pure function (de Wynter & Perry 2020, §2; the FPTAS of de Wynter 2020, arXiv 2010.08512).

:func:`run_algorithm1` takes the candidates' p̂ and î as arrays and the error function ê(ξ, θ) as an argument: no
trainer, no teacher, no global state inside the search. Its result types are here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bortfast._base.checks import check_int_type
from bortfast._base.io import write_json
from bortfast.search import selection
from bortfast.search.config import ErrorFn
from bortfast.search.journal import Journal, _theta_key
from bortfast.space import Arch, PerLayerArch


# ----------------------------------------------------------------------------------------------------- results
@dataclass
class Candidate:
    """One ξ of the search space with its metrics; ``error``/``theta``/``w`` are set only for trained pivots."""

    arch: Arch | PerLayerArch  # ξ = <D, A, H, I> (with the teacher's vocabulary), or per-layer widths
    params: int  # p̂: exact trainable parameters
    flops: int  # encoder-forward FLOPs for (batch, seq_len)
    latency: float  # î: median kernel latency in ms, or FLOPs when latency="flops"
    pivot: bool  # selected by the interval rule (trained)
    error: float | None = None  # ê of the θ with the largest W for this ξ (= the smallest ê over Θ)
    theta: dict[str, Any] | None = None  # that θ
    w: float | None = None  # W(ξ) under that θ
    teacher_layers: list[int] | None = None  # per-layer ξ: the teacher layer each of its layers is cut from


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
    selection: dict[str, Any] | None = None  # how ξ* was chosen: W (the paper) or the user's budget / floor
    error_param_spearman: float | None = None  # Spearman(ê, p̂) over the trained pivots (< 0: bigger is better)

    @property
    def best_arch(self) -> Arch | PerLayerArch:
        """ξ*."""
        return self.candidates[self.best].arch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        data = dict(data)
        data["teacher"] = Arch(**data["teacher"])
        data["candidates"] = [Candidate(**{**c, "arch": arch_from_dict(c["arch"])}) for c in data["candidates"]]
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



def arch_from_dict(d: Mapping[str, Any]) -> Arch | PerLayerArch:
    """A candidate's ``arch`` as ``search.json`` stores it (``dataclasses.asdict`` of an Arch or a PerLayerArch)."""
    if "head_dim" in d:  # a per-layer ξ (dataclasses.asdict of PerLayerArch)
        return PerLayerArch(**{**d, "heads": tuple(d["heads"]), "intermediate": tuple(d["intermediate"])})
    return Arch(**d)


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
    archs: Sequence[Arch | PerLayerArch],
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
    thetas, p, i = _check_inputs(archs, params, latency, teacher_params, teacher_latency, eps, thetas, rank,
                                 world_size)
    f = np.asarray(flops if flops is not None else np.zeros(len(archs)), dtype=np.int64)
    journal = journal if journal is not None else Journal(None, settings or {})

    # 1. Pivots: the ε-interval representatives of p̂; every (pivot, θ) is one training, split over the ranks.
    pivots = pivot_indices(p, eps)
    jobs = [(pos, int(k), t) for pos, k in enumerate(pivots) for t in range(len(thetas))]
    mine = [job for job in jobs if job[0] % world_size == rank]
    # 2. ê of this rank's trainings (journal first), then every rank's.
    errors = _train(mine, archs, thetas, error_fn, journal, progress)
    errors = _gathered(errors, gather, jobs, archs, thetas)
    # 3. W for every (pivot, θ), then argmax (C++; ties -> earliest trial).
    trial_e = np.array([errors[(k, t)] for _, k, t in jobs], dtype=np.float64)
    trial_k = np.array([k for _, k, _ in jobs], dtype=np.int64)
    trial_w = selection.w_coefficients(p[trial_k], i[trial_k], trial_e, teacher_params, teacher_latency, eps_small)
    trials = [Trial(candidate=k, theta=t, error=float(e), w=float(w))
              for (_, k, t), e, w in zip(jobs, trial_e, trial_w)]
    best_trial = trials[selection.argmax(trial_w)]
    # 4. Every candidate with its best θ, and the (approximate) Pareto fronts of the trained ones.
    candidates = _candidates(archs, p, i, f, trials, thetas)
    front, approx = _fronts([int(k) for k in pivots], p, i, candidates, pareto_delta)
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
        pareto_front=front,
        approx_pareto_front=approx,
        trainings=len(jobs),
    )


def _check_inputs(archs: list[Arch], params: Sequence[float] | np.ndarray, latency: Sequence[float] | np.ndarray,
                  teacher_params: float, teacher_latency: float, eps: int, thetas: Sequence[Mapping[str, Any]],
                  rank: int, world_size: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Reject bad arguments of :func:`run_algorithm1`; return θs as dicts and p̂ and î as float64 arrays."""
    n = len(archs)
    if n == 0:
        raise ValueError("the search space is empty")
    check_int_type("eps", eps)
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
    return thetas, p, i


def _train(mine: list[tuple[int, int, int]], archs: list[Arch], thetas: list[dict], error_fn: ErrorFn,
           journal: Journal, progress: bool) -> dict[tuple[int, int], float]:
    """ê of each (pivot position, candidate, θ) job of this rank: from the journal, else ``error_fn`` (recorded)."""
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
    return errors


def _gathered(errors: dict[tuple[int, int], float], gather: Callable[[dict], list[dict]] | None,
              jobs: list[tuple[int, int, int]], archs: list[Arch], thetas: list[dict]) -> dict[tuple[int, int], float]:
    """Every rank's ê merged (``gather``), checked to cover every job."""
    if gather is not None:
        merged: dict[tuple[int, int], float] = {}
        for part in gather(errors):
            merged.update(part)
        errors = merged
    missing = [(archs[k], thetas[t]) for _, k, t in jobs if (k, t) not in errors]
    if missing:
        raise RuntimeError(f"{len(missing)} trainings missing after gathering, e.g. {missing[0]}")
    return errors


def _candidates(archs: list[Arch], p: np.ndarray, i: np.ndarray, f: np.ndarray, trials: list[Trial],
                thetas: list[dict]) -> list[Candidate]:
    """One Candidate per architecture; a pivot keeps its best θ: largest W, then smallest ê (matters when W = 0),
    then earliest."""
    candidates = [Candidate(arch=a, params=int(p[k]), flops=int(f[k]), latency=float(i[k]), pivot=False)
                  for k, a in enumerate(archs)]
    for trial in trials:
        c = candidates[trial.candidate]
        c.pivot = True
        if c.w is None or trial.w > c.w or (trial.w == c.w and trial.error < c.error):
            c.error, c.theta, c.w = trial.error, thetas[trial.theta], trial.w
    return candidates


def _fronts(trained: list[int], p: np.ndarray, i: np.ndarray, candidates: list[Candidate],
            pareto_delta: float) -> tuple[list[int], list[int] | None]:
    """Indices of the exact and the δ-approximate Pareto front over (p̂, î, ê) of the trained candidates (the
    approximate one needs every coordinate > 0, else None)."""
    points = np.array([[p[k], i[k], candidates[k].error] for k in trained], dtype=np.float64).reshape(-1, 3)
    front = [trained[j] for j in selection.pareto_front(points)]
    approx = ([trained[j] for j in selection.approx_pareto_front(points, pareto_delta)]
              if (points > 0).all() else None)
    return sorted(front), sorted(approx) if approx is not None else None


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc="pivots", unit="training", dynamic_ncols=True)
