"""Per-layer widths as a multiple-choice knapsack, solved by an FPTAS (DESIGN.md §1, "The dynamic programme").

For each of L teacher layers a menu of options (drop the layer, or keep a_l heads and i_l FFN neurons, the most
important first), each with an additive cost ≥ 0 (parameters, or per-layer latency) and an additive value ≥ 0
(retained importance). A full choice takes exactly one option per layer. :func:`layer_frontier` returns, in one
call, the approximate cost/value frontier with the per-layer choice of every point; :func:`best_under_budget`
reads a budget off it. Guarantee: for every budget B ≥ the cheapest full choice, the best frontier point of cost
≤ B has value ≥ (1 − δ)·OPT(B) (up to floating-point rounding of the sums).

The algorithm (Ibarra & Kim's value rounding, one pass per binary scale so that every budget is covered, as in
Papadimitriou & Yannakakis' approximate Pareto sets):

1. Per layer, drop options dominated by another (cheaper-or-equal and at least as valuable; of equal options the
   first in the menu stays).
2. The cheapest full choice is a frontier candidate (it serves every budget where OPT = 0).
3. For each distinct t = ⌊log2 v⌋ over the positive values: keep the options of value < 2^(t+1), round each value
   down to the level ⌊v/u⌋ with u = δ·2^t/L, and compute by DP over the layers the least cost of every total
   level (options in menu order, a strictly smaller cost wins, so ties go to the lowest index).
   Why it is enough: an optimal choice whose largest option value m has ⌊log2 m⌋ = t is among pass t's
   choices, worth OPT ≥ m ≥ 2^t, and rounding loses < L·u = δ·2^t ≤ δ·OPT; the least-cost choice at its level
   costs no more and is worth at least OPT − L·u.
4. Keep the non-dominated (cost, value) points of all passes: cost and value both strictly increase.

A pass has at most 1 + 2L²/δ levels, so the time is O(P·L·K·L²/δ) with P ≤ min(#options, ~2100) passes (the
distinct binary exponents of the values; a handful in practice). :func:`layer_frontier` runs the C++ core
(``bortfast._core.layer_frontier``, GIL released); ``layer_frontier_reference`` in ``tests/reference.py`` is the
same algorithm in plain Python and returns exactly the same frontier, and ``exact_best`` there is brute force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bortfast import _core

__all__ = ["Frontier", "best_under_budget", "layer_frontier"]

# Same limits as csrc/knapsack.{h,cc}.
MAX_TABLE_ENTRIES = 1 << 26
MIN_POSITIVE_VALUE = 1e-280


@dataclass(frozen=True, eq=False)
class Frontier:
    """The approximate cost/value frontier of a per-layer choice, sorted by cost."""

    cost: np.ndarray  # (n,) float64, strictly increasing: the cost of each point's full choice
    value: np.ndarray  # (n,) float64, strictly increasing: its (true, unrounded) value
    choice: np.ndarray  # (n, L) int64: the option index taken in each layer's menu
    delta: float  # the approximation parameter it was computed with

    def __len__(self) -> int:
        return len(self.cost)


def _menus(costs: Any, values: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-layer float64 menus from a sequence of L per-layer sequences (ragged allowed) or an (L, K) array."""
    if isinstance(costs, np.ndarray) and costs.ndim != 2:
        raise ValueError(f"costs must be a sequence of per-layer menus or an (L, K) array, got shape {costs.shape}")
    if isinstance(values, np.ndarray) and values.ndim != 2:
        raise ValueError(f"values must be a sequence of per-layer menus or an (L, K) array, got shape {values.shape}")
    if len(costs) != len(values):
        raise ValueError(f"costs and values must have one menu per layer, got {len(costs)} and {len(values)} layers")
    cost_menus, value_menus = [], []
    for layer, (c, v) in enumerate(zip(costs, values)):
        c_arr, v_arr = np.asarray(c), np.asarray(v)
        for name, arr in (("costs", c_arr), ("values", v_arr)):
            if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
                raise TypeError(f"{name} of layer {layer} must hold real numbers, got dtype {arr.dtype}")
            if arr.ndim != 1:
                raise ValueError(f"{name} of layer {layer} must be a 1-D menu, got shape {arr.shape}")
        if len(c_arr) != len(v_arr):
            raise ValueError(f"layer {layer} has {len(c_arr)} costs but {len(v_arr)} values")
        cost_menus.append(c_arr.astype(np.float64))
        value_menus.append(v_arr.astype(np.float64))
    return cost_menus, value_menus


def _check_delta(delta: Any) -> float:
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)):
        raise TypeError(f"delta must be a real number, got {delta!r} ({type(delta).__name__})")
    return float(delta)


def layer_frontier(costs: Any, values: Any, delta: float) -> Frontier:
    """The (1 − δ)-approximate cost/value frontier of choosing one option per layer (C++ core, GIL released).

    ``costs[l][k]`` / ``values[l][k]``: cost ≥ 0 and value ≥ 0 of option ``k`` of layer ``l`` (a sequence of
    per-layer menus, which may differ in length, or an (L, K) array); ``0 < delta < 1``. Bad input (an empty
    menu, a negative or non-finite number, mismatched menus, ``delta`` outside (0, 1)) raises ``ValueError``
    naming the value.
    """
    delta = _check_delta(delta)
    cost_menus, value_menus = _menus(costs, values)
    if not cost_menus:
        raise ValueError("costs must describe at least one layer, got 0 menus")
    offsets = np.zeros(len(cost_menus) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in cost_menus])
    flat_costs, flat_values = np.concatenate(cost_menus), np.concatenate(value_menus)
    cost, value, choice = _core.layer_frontier(flat_costs, flat_values, offsets, delta)
    return Frontier(cost=cost, value=value, choice=choice, delta=delta)


def best_under_budget(frontier: Frontier, budget: float) -> int:
    """Index of the frontier point of largest value (= largest cost) with cost ≤ ``budget``.

    Its value is ≥ (1 − δ)·OPT(budget). A budget below the cheapest full choice (or NaN) raises ``ValueError``.
    """
    budget = float(budget)
    if math.isnan(budget):
        raise ValueError(f"budget must be a number, got {budget!r}")
    if len(frontier) == 0 or budget < frontier.cost[0]:
        cheapest = float(frontier.cost[0]) if len(frontier) else float("nan")
        raise ValueError(f"budget={budget!r} is below the cheapest full choice, which costs {cheapest!r}")
    return int(np.searchsorted(frontier.cost, budget, side="right")) - 1
