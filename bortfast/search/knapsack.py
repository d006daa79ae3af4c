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
(``bortfast._core.layer_frontier``, GIL released); :func:`layer_frontier_reference` is the same algorithm in
plain Python and returns exactly the same frontier; :func:`exact_best` is brute force, for tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bortfast import _core

__all__ = ["Frontier", "best_under_budget", "exact_best", "layer_frontier", "layer_frontier_reference"]

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


# --- plain-Python reference and brute force ----------------------------------------------------------------------


def _validate_reference(cost_menus: list[list[float]], value_menus: list[list[float]], delta: float) -> None:
    if not (math.isfinite(delta) and 0.0 < delta < 1.0):
        raise ValueError(f"delta must be in (0, 1), got {delta!r}")
    if not cost_menus:
        raise ValueError("costs must describe at least one layer, got 0 menus")
    cost_sum = value_sum = 0.0
    for layer, (cs, vs) in enumerate(zip(cost_menus, value_menus)):
        if not cs:
            raise ValueError(f"layer {layer} has an empty menu; every layer needs at least one option")
        for k, (c, v) in enumerate(zip(cs, vs)):
            if not (math.isfinite(c) and c >= 0.0):
                raise ValueError(f"costs (layer {layer}, option {k}) must be finite and >= 0, got {c!r}")
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"values (layer {layer}, option {k}) must be finite and >= 0, got {v!r}")
            if 0.0 < v < MIN_POSITIVE_VALUE:
                raise ValueError(f"values (layer {layer}, option {k}) must be 0 or >= 1e-280, got {v!r}")
        cost_sum += max(cs)
        value_sum += max(vs)
    if not math.isfinite(cost_sum):
        raise ValueError("the costs of a full choice overflow a double")
    if not math.isfinite(value_sum):
        raise ValueError("the values of a full choice overflow a double")


def _undominated(cs: list[float], vs: list[float]) -> list[int]:
    """Menu indices of a layer's undominated options, in menu order (see the module docstring, step 1)."""
    kept, best = [], -1.0
    for k in sorted(range(len(cs)), key=lambda k: (cs[k], -vs[k], k)):
        if vs[k] > best:
            kept.append(k)
            best = vs[k]
    return sorted(kept)


def _non_dominated(points: list[tuple[float, float, list[int]]]) -> list[tuple[float, float, list[int]]]:
    """Stable sort by (cost ascending, value descending); keep each point worth more than all before it."""
    kept: list[tuple[float, float, list[int]]] = []
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if not kept or p[1] > kept[-1][1]:
            kept.append(p)
    return kept


def _run_pass(cost_menus, value_menus, options: list[list[int]], level: list[dict[int, int]]):
    """Least cost of every rounded total level, layer by layer; the non-dominated points, walked back."""
    inf = math.inf
    prev_cost, prev_value = [0.0], [0.0]
    choice: list[list[int]] = []
    for layer, menu in enumerate(options):
        reach = len(prev_cost)
        width = reach + max(level[layer][k] for k in menu)
        cost, value, ch = [inf] * width, [0.0] * width, [-1] * width
        for k in menu:  # menu order, strict '<': ties go to the lowest index
            s, c, v = level[layer][k], cost_menus[layer][k], value_menus[layer][k]
            for r in range(reach):
                cand = prev_cost[r] + c
                if cand < cost[r + s]:
                    cost[r + s] = cand
                    value[r + s] = prev_value[r] + v
                    ch[r + s] = k
        choice.append(ch)
        prev_cost, prev_value = cost, value
    reached = [(prev_cost[r], prev_value[r], r) for r in range(len(prev_cost)) if prev_cost[r] < inf]
    points = []
    for c, v, r in sorted(reached, key=lambda p: (p[0], -p[1])):
        if points and not v > points[-1][1]:
            continue
        picks = [0] * len(options)
        for layer in reversed(range(len(options))):
            picks[layer] = choice[layer][r]
            r -= level[layer][picks[layer]]
        points.append((c, v, picks))
    return points


def layer_frontier_reference(costs: Any, values: Any, delta: float) -> Frontier:
    """Plain-Python reference of :func:`layer_frontier`: the same algorithm, exactly the same frontier."""
    delta = _check_delta(delta)
    cost_arrays, value_arrays = _menus(costs, values)
    cost_menus = [c.tolist() for c in cost_arrays]
    value_menus = [v.tolist() for v in value_arrays]
    _validate_reference(cost_menus, value_menus, delta)
    n_layers = len(cost_menus)
    menus = [_undominated(cs, vs) for cs, vs in zip(cost_menus, value_menus)]

    cheapest_cost = cheapest_value = 0.0
    cheapest = []
    for layer, menu in enumerate(menus):
        cs, vs = cost_menus[layer], value_menus[layer]
        best = menu[0]
        for k in menu:
            if cs[k] < cs[best] or (cs[k] == cs[best] and vs[k] > vs[best]):
                best = k
        cheapest_cost += cs[best]
        cheapest_value += vs[best]
        cheapest.append(best)
    candidates = [(cheapest_cost, cheapest_value, cheapest)]

    exponents = sorted({math.frexp(value_menus[layer][k])[1] - 1
                        for layer, menu in enumerate(menus) for k in menu if value_menus[layer][k] > 0.0})
    passes = []
    for t in exponents:
        cap = math.ldexp(1.0, t + 1)
        unit = math.ldexp(delta, t) / n_layers
        options = [[k for k in menu if value_menus[layer][k] < cap] for layer, menu in enumerate(menus)]
        if not all(options):
            continue
        level_max = [max(math.floor(value_menus[layer][k] / unit) for k in ks) for layer, ks in enumerate(options)]
        levels = 1 + sum(level_max)
        if levels * n_layers > MAX_TABLE_ENTRIES:
            raise ValueError(f"delta={delta!r} is too small for {n_layers} layers: a DP pass would need {levels} "
                             f"value levels x {n_layers} layers, more than {MAX_TABLE_ENTRIES} table entries")
        level = [{k: math.floor(value_menus[layer][k] / unit) for k in ks} for layer, ks in enumerate(options)]
        passes.append((options, level))
    for options, level in passes:
        candidates.extend(_run_pass(cost_menus, value_menus, options, level))

    front = _non_dominated(candidates)
    return Frontier(
        cost=np.array([p[0] for p in front], dtype=np.float64),
        value=np.array([p[1] for p in front], dtype=np.float64),
        choice=np.array([p[2] for p in front], dtype=np.int64).reshape(len(front), n_layers),
        delta=delta,
    )


def exact_best(costs: Sequence[Sequence[float]], values: Sequence[Sequence[float]],
               budget: float) -> tuple[float, tuple[int, ...]]:
    """Brute force over every full choice: (best value, its per-layer choice) at cost ≤ ``budget``.

    Costs and values are summed in layer order, as the DP does. Exponential in the layers: for tests.
    """
    best: tuple[float, tuple[int, ...]] | None = None
    for picks in itertools.product(*[range(len(menu)) for menu in costs]):
        cost = value = 0.0
        for layer, k in enumerate(picks):
            cost += float(costs[layer][k])
            value += float(values[layer][k])
        if cost <= budget and (best is None or value > best[0]):
            best = (value, picks)
    if best is None:
        raise ValueError(f"budget={budget!r} is below the cheapest full choice")
    return best
