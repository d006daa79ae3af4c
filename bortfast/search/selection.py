"""Selection core of Algorithm 1 (the FPTAS search of de Wynter 2020, arXiv 2010.08512; Bort paper §2).

The functions the search needs besides training, each computed in C++ (``bortfast._core``, GIL released); the
tests compare each with its plain-Python reference (``*_reference`` in ``tests/reference.py``):

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

from typing import Any

import numpy as np

from bortfast import _core
from bortfast._base.checks import check_int_type

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



def stable_order(values: Any) -> np.ndarray:
    """Indices that sort ``values`` ascending; equal values keep index order."""
    return _core.stable_order(_as_float_array(values, "values", 1))


def interval_pivots(values: Any, eps: int) -> np.ndarray:
    """Original indices at sorted positions ``0, eps, 2*eps, ...`` (< n): ``ceil(n / eps)`` pivots."""
    return _core.interval_pivots(_as_float_array(values, "values", 1), check_int_type("eps", eps))


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
