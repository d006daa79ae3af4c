"""Plain-Python references of the C++ core (``bortfast._core``): the test oracles that the tests (and the speed
benchmarks, which put this folder on ``sys.path``) compare the core with. Each computes the same thing as its
counterpart in the package, with no numpy and no C++, so a disagreement points at one of the two.

- the cost model of :mod:`bortfast.space` (:func:`param_count_reference`, :func:`encoder_flops_reference`);
- the selection core of :mod:`bortfast.search.selection` (``stable_order``, ``interval_pivots``, ``w_coefficients``,
  ``argmax``, ``pareto_front``, ``approx_pareto_front``; each ``*_reference`` takes and returns plain lists);
- the knapsack FPTAS of :mod:`bortfast.search.knapsack` (:func:`layer_frontier_reference`: the same algorithm, exactly
  the same frontier) and :func:`exact_best`, the brute-force optimum.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from bortfast.search.knapsack import MAX_TABLE_ENTRIES, MIN_POSITIVE_VALUE, Frontier, _check_delta, _menus
from bortfast.space import BERT_MAX_POSITIONS, BERT_TYPE_VOCAB, BERT_VOCAB_SIZE, ModelKind

# --- cost model (bortfast.space, csrc/cost_model.cc) ---------------------------------------------------------------


def param_count_reference(
    layers: int, heads: int, hidden: int, intermediate: int, vocab_size: int = BERT_VOCAB_SIZE,
    max_positions: int = BERT_MAX_POSITIONS, type_vocab_size: int = BERT_TYPE_VOCAB,
    kind: ModelKind = "encoder+pooler",
) -> int:
    """Plain-Python reference of the parameter count (same formula as the C++ core)."""
    D, H, I = layers, hidden, intermediate  # noqa: E741
    p = (vocab_size + max_positions + type_vocab_size) * H + 2 * H + D * (4 * H * H + 2 * H * I + 9 * H + I)
    if kind == "encoder+pooler":
        p += H * H + H
    elif kind == "masked-lm":
        p += H * H + 3 * H + vocab_size
    elif kind != "encoder":
        raise ValueError(f"kind must be 'encoder', 'encoder+pooler' or 'masked-lm', got {kind!r}")
    return p


def encoder_flops_reference(layers: int, heads: int, hidden: int, intermediate: int, batch: int,
                            seq_len: int) -> int:
    """Plain-Python reference of the encoder FLOPs (same formula as the C++ core)."""
    del heads  # the total does not depend on how H is split across heads
    tokens = batch * seq_len
    return layers * (2 * tokens * (4 * hidden**2 + 2 * hidden * intermediate) + 4 * tokens * seq_len * hidden)


# --- selection core (bortfast.search.selection, csrc/selection.cc) ------------------------------------------------


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


# --- knapsack FPTAS (bortfast.search.knapsack, csrc/knapsack.cc) and brute force ---------------------------------


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
    """Menu indices of a layer's undominated options, in menu order (bortfast.search.knapsack's docstring, step 1)."""
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
