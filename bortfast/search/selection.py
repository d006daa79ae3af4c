"""Selection core of Algorithm 1 (the FPTAS search of de Wynter 2020, arXiv 2010.08512; Bort paper §2).

The functions the search needs besides training, each computed in C++ (``bortfast._core``, GIL released) with a
plain-Python reference (``*_reference``) that the tests compare it with:

- :func:`stable_order` — indices sorting p̂ ascending; ties keep index order.
- :func:`interval_pivots` — one candidate every ``eps`` positions of that order: sorted positions
  ``0, eps, 2*eps, ..., k*eps`` with ``k*eps < n``, i.e. ``ceil(n / eps)`` pivots. The first (smallest p̂) is always
  a pivot; the last sorted position ``n - 1`` is one only when ``eps`` divides ``n - 1``. ``eps = 1`` is exhaustive.
- :func:`w_coefficients` — the scalarisation of the Bort paper, maximised::

      W(ξ) = max(0, (p_T − p)/p_T) · max(0, (i_T − i)/i_T) / (ê + eps_small)

  The factors are clamped at 0 so an architecture larger *and* slower than T cannot score positive; T scores 0.
- :func:`argmax` — ties go to the lowest index; NaN raises.
- :func:`pareto_front` — exact front of (p̂, î, ê), all minimised, O(n log n). A point is dropped iff another is
  ≤ in every objective and < in one; identical points do not dominate each other, so duplicates are all kept.
- :func:`approx_pareto_front` — the ε-approximate front of Papadimitriou & Yannakakis: every objective v > 0 goes to
  the cell ``floor(log(v) / log1p(delta))`` of a (1+δ) geometric grid; each cell keeps its lexicographically smallest
  point (lowest index on ties); the representatives of the non-dominated cells are returned. Every exact-front
  point q is then (1+δ)-dominated (r ≤ (1+δ)·q in every objective) by a returned r, and every returned point is on
  the exact front.

All index outputs are int64 arrays; fronts are returned in increasing index order. Bad input (NaN/inf, non-positive
values where a logarithm is taken, wrong shapes or dtypes, ``eps`` outside ``[1, n]``) raises ``ValueError`` or
``TypeError`` naming the value.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bortfast import _core

__all__ = [
    "approx_pareto_front",
    "argmax",
    "interval_pivots",
    "pareto_front",
    "stable_order",
    "w_coefficients",
]


def _as_float_array(values: Any, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


def _as_points(points: Any) -> np.ndarray:
    arr = _as_float_array(points, "points", 2)
    if arr.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3) = (params, latency, error), got {arr.shape}")
    return arr


# --- C++ (the API) ------------------------------------------------------------------------------------------------


def stable_order(values: Any) -> np.ndarray:
    """Indices that sort ``values`` ascending; equal values keep index order."""
    return _core.stable_order(_as_float_array(values, "values", 1))


def interval_pivots(values: Any, eps: int) -> np.ndarray:
    """Original indices at sorted positions ``0, eps, 2*eps, ...`` (< n): ``ceil(n / eps)`` pivots."""
    if isinstance(eps, bool) or not isinstance(eps, (int, np.integer)):
        raise TypeError(f"eps must be an int, got {eps!r} ({type(eps).__name__})")
    return _core.interval_pivots(_as_float_array(values, "values", 1), int(eps))


def w_coefficients(p: Any, i: Any, e: Any, p_T: float, i_T: float, eps_small: float = 1e-12) -> np.ndarray:
    """The W-coefficient of every candidate (float64), to be maximised."""
    return _core.w_coefficients(_as_float_array(p, "p", 1), _as_float_array(i, "i", 1), _as_float_array(e, "e", 1),
                                float(p_T), float(i_T), float(eps_small))


def argmax(values: Any) -> int:
    """Index of the largest value; ties go to the lowest index; NaN raises ``ValueError``."""
    return int(_core.argmax(_as_float_array(values, "values", 1)))


def pareto_front(points: Any) -> np.ndarray:
    """Indices (increasing) of the exact Pareto front of an ``(n, 3)`` array, every objective minimised."""
    return _core.pareto_front(_as_points(points))


def approx_pareto_front(points: Any, delta: float) -> np.ndarray:
    """Indices (increasing) of a (1+δ)-approximate Pareto front of an ``(n, 3)`` array of positive values."""
    return _core.approx_pareto_front(_as_points(points), float(delta))


# --- plain-Python references ---------------------------------------------------------------------------------------


def _check_finite(values: Sequence[float], name: str) -> None:
    for k, v in enumerate(values):
        if not math.isfinite(v):
            raise ValueError(f"{name}[{k}] must be finite, got {v!r}")


def stable_order_reference(values: Sequence[float]) -> list[int]:
    values = [float(v) for v in values]
    _check_finite(values, "values")
    return sorted(range(len(values)), key=lambda k: values[k])  # Python's sort is stable


def interval_pivots_reference(values: Sequence[float], eps: int) -> list[int]:
    n = len(values)
    if not 1 <= eps <= max(n, 1):
        raise ValueError(f"eps must be an integer in [1, {max(n, 1)}] (the number of candidates), got {eps}")
    order = stable_order_reference(values)
    return [order[pos] for pos in range(0, n, eps)]


def w_coefficients_reference(p: Sequence[float], i: Sequence[float], e: Sequence[float], p_T: float, i_T: float,
                             eps_small: float = 1e-12) -> list[float]:
    if not (math.isfinite(p_T) and p_T > 0):
        raise ValueError(f"p_T must be finite and positive, got {p_T!r}")
    if not (math.isfinite(i_T) and i_T > 0):
        raise ValueError(f"i_T must be finite and positive, got {i_T!r}")
    if not (math.isfinite(eps_small) and eps_small >= 0):
        raise ValueError(f"eps_small must be finite and >= 0, got {eps_small!r}")
    if not len(p) == len(i) == len(e):
        raise ValueError(f"p, i and e must have the same length, got {len(p)}, {len(i)}, {len(e)}")
    for name, arr in (("p", p), ("i", i), ("e", e)):
        _check_finite(arr, name)
        for k, v in enumerate(arr):
            if v < 0:
                raise ValueError(f"{name}[{k}] must be >= 0, got {v!r}")
    out = []
    for pk, ik, ek in zip(p, i, e):
        if not ek + eps_small > 0:
            raise ValueError(f"e + eps_small must be > 0, got e={ek!r}, eps_small={eps_small!r}")
        fp = max(0.0, (p_T - pk) / p_T)
        fi = max(0.0, (i_T - ik) / i_T)
        w = fp * fi / (ek + eps_small)
        if not math.isfinite(w):
            raise ValueError(f"W overflows at index {len(out)}: e + eps_small = {ek + eps_small!r} is too small")
        out.append(w)
    return out


def argmax_reference(values: Sequence[float]) -> int:
    if len(values) == 0:
        raise ValueError("argmax of an empty array")
    best = 0
    for k, v in enumerate(values):
        if math.isnan(v):
            raise ValueError(f"values[{k}] is NaN")
        if v > values[best]:
            best = k
    return best


def _check_points(points: Sequence[Sequence[float]], positive: bool) -> list[tuple[float, float, float]]:
    out = []
    for k, row in enumerate(points):
        if len(row) != 3:
            raise ValueError(f"points[{k}] must have 3 objectives, got {len(row)}")
        for j, v in enumerate(row):
            if not math.isfinite(v):
                raise ValueError(f"points[{k}, {j}] must be finite, got {v!r}")
            if positive and not v > 0:
                raise ValueError(f"points[{k}, {j}] must be positive (its logarithm is taken), got {v!r}")
        out.append((float(row[0]), float(row[1]), float(row[2])))
    return out


def _front_sweep(keys: list[tuple[float, float, float]]) -> list[int]:
    """Positions of the non-dominated keys; same sweep as the C++ core with a bisect-kept staircase."""
    order = sorted(range(len(keys)), key=lambda k: (keys[k], k))
    stair_y: list[float] = []  # increasing
    stair_z: list[float] = []  # strictly decreasing
    kept = []
    g = 0
    while g < len(order):
        h = g + 1
        while h < len(order) and keys[order[h]] == keys[order[g]]:
            h += 1
        _, y, z = keys[order[g]]
        pos = bisect.bisect_right(stair_y, y)
        if not (pos > 0 and stair_z[pos - 1] <= z):
            kept.extend(order[g:h])
            lo = bisect.bisect_left(stair_y, y)
            hi = lo
            while hi < len(stair_y) and stair_z[hi] >= z:
                hi += 1
            stair_y[lo:hi] = [y]
            stair_z[lo:hi] = [z]
        g = h
    return sorted(kept)


def pareto_front_reference(points: Sequence[Sequence[float]]) -> list[int]:
    return _front_sweep(_check_points(points, positive=False))


def approx_pareto_front_reference(points: Sequence[Sequence[float]], delta: float) -> list[int]:
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be finite and > 0, got {delta!r}")
    pts = _check_points(points, positive=True)
    log_base = math.log1p(delta)
    cells = [tuple(float(math.floor(math.log(v) / log_base)) for v in row) for row in pts]
    reps: dict[tuple, int] = {}
    for k in sorted(range(len(pts)), key=lambda k: (cells[k], pts[k], k)):
        reps.setdefault(cells[k], k)
    rep_ids = list(reps.values())
    kept = _front_sweep([cells[k] for k in rep_ids])
    return sorted(rep_ids[k] for k in kept)
