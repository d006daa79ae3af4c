"""How ξ* is chosen from Algorithm 1's table: W's argmax (the paper's rule, the default) or the best ξ for a
budget the user states (a latency budget, a speed-up floor, a ceiling on ê); and Spearman(ê, p̂), which says
whether ê ranks capacity at all."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from bortfast.search.algorithm import SearchResult
from bortfast.space import Arch, PerLayerArch

# A check of a finalist in the deployment engine: arch -> {"ok": bool, ...measured figures}.
ChoiceCheck = Callable[[Arch | PerLayerArch, float | None, float | None], Mapping[str, Any]]
# With a check, finalists are the trained ξ within budget / CHECK_SLACK by î: î is a proxy that misranks ξ by up to
# 1.8x against ONNX Runtime (README, Known limits), so ξ that î puts a little over the budget are timed too.
CHECK_SLACK = 0.7
# p̂ does not see A (the head count splits H, it adds no parameter) and 10-step ê barely does (the demo's
# ⟨2, A, 192, 1152⟩, A in 3/6/12: ê within 0.004), yet ORT's latency and the quality both move with A. So each
# finalist stands for its head-count twins (same D, H, I: identical p̂) and is checked, and chosen, as the twin
# whose head size H/A is nearest the teacher's (on a log scale; ties: fewer heads, the faster), carrying the
# finalist's ê, θ and W. Measured (README, "Recipe and shape at ≥ 5x"), all-MiniLM-L6-v2 (head size 32), zero-shot
# STS-B dev of the inherited students: ⟨2, A, 192, 1152⟩ A = 3/6/12 0.800/0.800/0.785, ⟨4, A, 384, 1152⟩ 0.822/
# 0.828/0.843: at equal head size quality is kept, a head size 4x the teacher's loses it (an earlier "fewest heads"
# rule chose ⟨4, 3, 384, 1152⟩ and it scored 0.794 after 600 distillation steps).
TWINS = True


def error_param_spearman(result: SearchResult) -> float | None:
    """Spearman ρ between ê and p̂ over the trained pivots: ≤ −0.5 means ê ranks capacity (bigger = better)."""
    from scipy.stats import spearmanr

    trained = [c for c in result.candidates if c.error is not None]
    if len(trained) < 3 or len({c.params for c in trained}) < 2 or len({c.error for c in trained}) < 2:
        return None
    return float(spearmanr([c.error for c in trained], [c.params for c in trained]).statistic)


def choose_for_user(result: SearchResult, *, max_latency: float | None = None, min_speedup: float | None = None,
                    max_error: float | None = None, check: ChoiceCheck | None = None) -> SearchResult:
    """ξ* under a stated budget: with a latency budget (``max_latency`` on î, or ``min_speedup`` over T) the
    trained ξ of lowest ê within it; with only a ceiling on ê the fastest ξ within it. Without any, W's argmax
    (the paper's rule, kept). ValueError names the budget when no trained ξ meets it.

    ``check(arch, max_latency, min_speedup)`` re-measures a latency-budget finalist in the deployment engine (î
    is a proxy): the finalists (trained ξ within the budget / :data:`CHECK_SLACK` by î) are tried in order of
    preference and the first whose check says ``"ok"`` is ξ*; every check is recorded in
    ``selection["checks"]``."""
    rho = error_param_spearman(result)
    budget = max_latency
    if min_speedup is not None:
        budget = min(budget or np.inf, result.teacher_latency / min_speedup)
    if budget is None and max_error is None:
        return dataclasses.replace(result, error_param_spearman=rho, selection={"rule": "W"})
    slack = CHECK_SLACK if check is not None and budget is not None else 1.0
    ok = [k for k, c in enumerate(result.candidates) if c.error is not None
          and (budget is None or c.latency * slack <= budget) and (max_error is None or c.error <= max_error)]
    stated = {"max_latency": max_latency, "min_speedup": min_speedup, "max_error": max_error}
    if not ok:
        raise ValueError(f"no trained architecture meets {_stated(stated)} (latency unit {result.latency_unit}, "
                         f"teacher î = {result.teacher_latency:.4g}); relax it or train more pivots (smaller eps)")
    c = result.candidates
    order = sorted(ok, key=lambda k: (c[k].error, c[k].latency, k) if budget is not None
                   else (c[k].latency, c[k].error, k))
    rule = "lowest ê within the latency budget" if budget is not None else "fastest within the error ceiling"
    selection: dict[str, Any] = {"rule": rule, **stated, "latency_budget": budget, "w_argmax": result.best}
    if slack != 1.0:
        selection["finalists_within"] = budget / slack  # î bound of the finalists the check timed
    best = order[0]
    if check is not None and budget is not None:
        head_size = result.teacher.head_dim
        best, selection["checks"] = _first_passing(order, c, check, max_latency, min_speedup, stated, head_size)
        if "twin_of" in selection["checks"][-1]:
            c = _as_twin(c, best, selection["checks"][-1]["twin_of"], selection)
    return dataclasses.replace(result, candidates=c, best=best, best_theta=c[best].theta, best_w=c[best].w,
                               error_param_spearman=rho, selection=selection)


def head_twins(candidates: list, k: int) -> list[int]:
    """The untrained candidates that differ from ``candidates[k]`` only in the head count A (so p̂ is equal)."""
    a = candidates[k].arch
    if not isinstance(a, Arch):
        return []
    return [j for j, cj in enumerate(candidates) if j != k and cj.error is None and isinstance(cj.arch, Arch)
            and (cj.arch.layers, cj.arch.hidden, cj.arch.intermediate) == (a.layers, a.hidden, a.intermediate)
            and cj.params == candidates[k].params]


def _as_twin(c: list, j: int, k: int, selection: dict[str, Any]) -> list:
    """ξ* = ``j``, the twin of finalist ``k`` nearest the teacher's head size: a copy of the candidates in which
    ``j`` carries ``k``'s ê, θ and W (p̂ is the same; ê is the finalist's, recorded as such in
    ``selection["twin_of"]``)."""
    c = list(c)
    c[j] = dataclasses.replace(c[j], error=c[k].error, theta=c[k].theta, w=c[k].w)
    selection["twin_of"] = {"candidate": k, "arch": list(c[k].arch.tuple),
                            "note": "ξ* differs from this trained finalist only in A (same p̂) and carries its ê"}
    return c


def _stated(stated: Mapping[str, float | None]) -> str:
    return ", ".join(f"{k}={v}" for k, v in stated.items() if v)


def _head_size_gap(arch: Arch, head_size: float) -> float:
    """How far ``arch``'s head size H/A is from ``head_size``, on a log scale (16 and 64 are as far from 32)."""
    return round(abs(math.log2(arch.head_dim / head_size)), 9)


def _first_passing(order: list[int], c: list, check: ChoiceCheck, max_latency: float | None,
                   min_speedup: float | None, stated: Mapping[str, float | None],
                   head_size: float) -> tuple[int, list[dict]]:
    checks: list[dict] = []
    for k in order:
        group = [k, *head_twins(c, k)] if TWINS else [k]
        j = min(group, key=lambda j: (_head_size_gap(c[j].arch, head_size), c[j].arch.heads, j)) \
            if len(group) > 1 else k
        report = dict(check(c[j].arch, max_latency, min_speedup))
        checks.append({"candidate": j, "arch": arch_key(c[j].arch), **({"twin_of": k} if j != k else {}),
                       **report})
        if report.get("ok"):
            return j, checks
    raise ValueError(f"{len(order)} trained architecture(s) meet {_stated(stated)} by î but none does when "
                     f"measured in the deployment engine ({'; '.join(_check_str(r) for r in checks)}); relax the "
                     f"budget or train more pivots (smaller eps)")


def arch_key(arch: Arch | PerLayerArch) -> list[int] | str:
    """How ``selection["checks"]`` names ξ: ``[D, A, H, I]``, or a per-layer ξ's spec ``"H=..;d=..;A=..;I=.."``."""
    return arch.spec if isinstance(arch, PerLayerArch) else list(arch.tuple)


def _check_str(r: Mapping[str, Any]) -> str:
    figures = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                        if k not in ("candidate", "arch", "ok"))
    name = r["arch"] if isinstance(r["arch"], str) else f"⟨{', '.join(map(str, r['arch']))}⟩"
    return f"{name}: {figures}"
