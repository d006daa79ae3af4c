"""How ξ* is chosen from Algorithm 1's table: W's argmax (the paper's rule, the default) or the best ξ for a
budget the user states (a latency budget, a speed-up floor, a ceiling on ê); and Spearman(ê, p̂), which says
whether ê ranks capacity at all."""

from __future__ import annotations

import dataclasses

import numpy as np

from bortfast.search.algorithm import SearchResult


def error_param_spearman(result: SearchResult) -> float | None:
    """Spearman ρ between ê and p̂ over the trained pivots: ≤ −0.5 means ê ranks capacity (bigger = better)."""
    from scipy.stats import spearmanr

    trained = [c for c in result.candidates if c.error is not None]
    if len(trained) < 3 or len({c.params for c in trained}) < 2 or len({c.error for c in trained}) < 2:
        return None
    return float(spearmanr([c.error for c in trained], [c.params for c in trained]).statistic)


def choose_for_user(result: SearchResult, *, max_latency: float | None = None, min_speedup: float | None = None,
                    max_error: float | None = None) -> SearchResult:
    """ξ* under a stated budget: with a latency budget (``max_latency`` on î, or ``min_speedup`` over T) the
    trained ξ of lowest ê within it; with only a ceiling on ê the fastest ξ within it. Without any, W's argmax
    (the paper's rule, kept). ValueError names the budget when no trained ξ meets it."""
    rho = error_param_spearman(result)
    budget = max_latency
    if min_speedup is not None:
        budget = min(budget or np.inf, result.teacher_latency / min_speedup)
    if budget is None and max_error is None:
        return dataclasses.replace(result, error_param_spearman=rho, selection={"rule": "W"})
    ok = [k for k, c in enumerate(result.candidates) if c.error is not None
          and (budget is None or c.latency <= budget) and (max_error is None or c.error <= max_error)]
    stated = {"max_latency": max_latency, "min_speedup": min_speedup, "max_error": max_error}
    if not ok:
        raise ValueError(f"no trained architecture meets {', '.join(f'{k}={v}' for k, v in stated.items() if v)} "
                         f"(latency unit {result.latency_unit}, teacher î = {result.teacher_latency:.4g}); relax it "
                         f"or train more pivots (smaller eps)")
    c = result.candidates
    best = min(ok, key=lambda k: (c[k].error, c[k].latency, k) if budget is not None else (c[k].latency, c[k].error, k))
    rule = "lowest ê within the latency budget" if budget is not None else "fastest within the error ceiling"
    return dataclasses.replace(result, best=best, best_theta=c[best].theta, best_w=c[best].w,
                               error_param_spearman=rho,
                               selection={"rule": rule, **stated, "latency_budget": budget,
                                          "w_argmax": result.best})
