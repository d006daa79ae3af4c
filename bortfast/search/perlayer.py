"""Per-layer architectures from the knapsack frontier (DESIGN.md §1, "The dynamic programme").

Given the teacher's per-unit importance (heads ``(D_T, A_T)`` and FFN neurons ``(D_T, I_T)``, plain arrays: the
search does not import distillation), every teacher layer gets a menu: drop it (cost 0, value 0), or keep its
``a`` most important heads and ``i`` most important neurons, worth their share of the layer's importance (see
:func:`layer_menus`) and costing the
layer's parameters or FLOPs at the student's hidden size (:func:`bortfast.space.per_layer_params` /
``per_layer_flops``: exact closed forms, so the frontier's cost of a choice is exactly p̂ or FLOPs of its encoder
layers). :func:`layer_frontier` over those menus gives, for every budget, a choice within (1 − δ) of the most
retained importance; :func:`frontier_archs` turns each frontier point into a :class:`~bortfast.space.PerLayerArch`
and the teacher layers it keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bortfast._base.checks import check_int
from bortfast.search.knapsack import Frontier, layer_frontier
from bortfast.space import PerLayerArch, per_layer_flops, per_layer_params

__all__ = ["LayerMenu", "PerLayerCandidate", "frontier_archs", "layer_menus", "menu_options", "per_layer_frontier",
           "per_layer_space", "thin"]

CostKind = Literal["params", "flops"]


@dataclass(frozen=True, eq=False)
class LayerMenu:
    """The options of every teacher layer: option k of a layer keeps ``heads[k]`` heads and ``neurons[k]`` FFN
    neurons (0 and 0 = drop the layer); ``costs`` / ``values`` are (D_T, K)."""

    heads: np.ndarray  # (K,) int64
    neurons: np.ndarray  # (K,) int64
    costs: np.ndarray  # (D_T, K) float64
    values: np.ndarray  # (D_T, K) float64


@dataclass(frozen=True)
class PerLayerCandidate:
    """One frontier point as a student: its shape, the teacher layer of each student layer, cost and value."""

    arch: PerLayerArch
    teacher_layers: tuple[int, ...]
    cost: float  # the frontier's cost: encoder-layer parameters or FLOPs
    value: float  # retained importance

    def to_json(self) -> dict:
        return {"arch": self.arch.spec, "teacher_layers": list(self.teacher_layers), "heads": list(self.arch.heads),
                "intermediate": list(self.arch.intermediate), "cost": self.cost, "value": self.value}


def _grid(values: Sequence[int] | None, top: int, name: str) -> np.ndarray:
    grid = np.arange(1, top + 1) if values is None else np.asarray(sorted(set(int(v) for v in values)))
    if grid.size == 0 or grid[0] < 1 or grid[-1] > top:
        raise ValueError(f"{name} options must be ints in [1, {top}], got {grid.tolist()}")
    return grid.astype(np.int64)


def _prefix_sums(importance: np.ndarray) -> np.ndarray:
    """(D, n + 1): per row, the sum of its k largest entries for k = 0..n."""
    ranked = -np.sort(-np.asarray(importance, dtype=np.float64), axis=1)
    return np.concatenate([np.zeros((len(ranked), 1)), np.cumsum(ranked, axis=1)], axis=1)


def menu_options(teacher_heads: int, teacher_intermediate: int, *, hidden: int, head_dim: int,
                 head_options: Sequence[int] | None = None,
                 neuron_options: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(heads, neurons) of every option of a layer's menu, int64 (K,): option 0 drops the layer (0, 0), then
    every head option × neuron option (see :func:`layer_menus` for the defaults)."""
    h_grid = _grid(head_options, min(teacher_heads, hidden // head_dim), "head")
    default_neurons = sorted({max(1, round(teacher_intermediate * k / 16)) for k in range(1, 17)})
    n_grid = _grid(neuron_options if neuron_options is not None else default_neurons, teacher_intermediate,
                   "neuron")
    heads = np.concatenate([[0], np.repeat(h_grid, len(n_grid))]).astype(np.int64)
    neurons = np.concatenate([[0], np.tile(n_grid, len(h_grid))]).astype(np.int64)
    return heads, neurons


def layer_menus(head_importance: np.ndarray, neuron_importance: np.ndarray, *, hidden: int, head_dim: int,
                head_options: Sequence[int] | None = None, neuron_options: Sequence[int] | None = None,
                layer_importance: np.ndarray | None = None, cost: CostKind | np.ndarray = "params",
                seq_len: int = 128) -> LayerMenu:
    """Menus for every teacher layer (see the module docstring). ``head_options`` default to 1..min(A_T,
    hidden/head_dim); ``neuron_options`` to 1/16, 2/16, ... of I_T. ``cost="flops"`` counts one sequence of
    ``seq_len`` tokens; an array is a measured cost per option of :func:`menu_options` (e.g. the fused kernel's
    per-layer latency table, :func:`bortfast.profile.perlayer.layer_latency_table`).

    Value of keeping a heads and i neurons of layer l: w_l · (S_heads(a) + S_neurons(i)) / 2, where S is the share
    of the layer's total head (neuron) importance in its a (i) best units and w_l the layer's importance (block
    influence; 1 when ``layer_importance`` is None). Shares, not raw sums: head and neuron importances are norms of
    contributions on different scales (MiniLM's 1,536 neurons sum to ~12x its 12 heads), so raw sums made the DP
    keep one head per layer; attention and FFN count as the two halves of what a layer adds."""
    heads_imp, neurons_imp = np.asarray(head_importance), np.asarray(neuron_importance)
    if heads_imp.ndim != 2 or neurons_imp.ndim != 2 or len(heads_imp) != len(neurons_imp):
        raise ValueError(f"importance must be (D, A) heads and (D, I) neurons over the same layers, got "
                         f"{heads_imp.shape} and {neurons_imp.shape}")
    if hidden <= 0 or head_dim <= 0 or hidden % head_dim:
        raise ValueError(f"hidden={hidden} must be a positive multiple of head_dim={head_dim}")
    if isinstance(cost, str) and cost not in ("params", "flops"):
        raise ValueError(f"cost must be 'params', 'flops' or a table of per-option costs, got {cost!r}")
    heads, neurons = menu_options(heads_imp.shape[1], neurons_imp.shape[1], hidden=hidden, head_dim=head_dim,
                                  head_options=head_options, neuron_options=neuron_options)
    keep = slice(1, None)
    per_option = np.zeros(len(heads))
    if not isinstance(cost, str):  # measured, e.g. bortfast.profile.perlayer.layer_latency_table
        per_option = np.asarray(cost, dtype=np.float64)
        if per_option.shape != heads.shape:
            raise ValueError(f"a cost table must hold one cost per option ({heads.shape[0]}: see menu_options), "
                             f"got shape {per_option.shape}")
    elif cost == "params":
        per_option[keep] = per_layer_params(hidden, heads[keep] * head_dim, neurons[keep])
    else:
        per_option[keep] = per_layer_flops(hidden, heads[keep] * head_dim, neurons[keep], 1, seq_len)
    head_share, neuron_share = _prefix_sums(heads_imp), _prefix_sums(neurons_imp)
    head_share /= np.maximum(head_share[:, -1:], 1e-300)  # share of the layer's head importance kept
    neuron_share /= np.maximum(neuron_share[:, -1:], 1e-300)
    weight = np.ones(len(heads_imp)) if layer_importance is None else np.asarray(layer_importance, np.float64)
    if weight.shape != (len(heads_imp),) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
        raise ValueError(f"layer_importance must be {len(heads_imp)} finite values >= 0, got {weight!r}")
    values = weight[:, None] * 0.5 * (head_share[:, heads] + neuron_share[:, neurons])  # (D_T, K)
    values[:, 0] = 0.0
    return LayerMenu(heads=heads, neurons=neurons, costs=np.tile(per_option, (len(heads_imp), 1)),
                     values=values)


def per_layer_frontier(menu: LayerMenu, delta: float = 0.01) -> Frontier:
    """The (1 − δ)-approximate cost/value frontier over ``menu`` (C++ knapsack FPTAS)."""
    return layer_frontier(menu.costs, menu.values, delta)


def frontier_archs(frontier: Frontier, menu: LayerMenu, *, hidden: int, head_dim: int, vocab_size: int,
                   max_positions: int, type_vocab_size: int) -> list[PerLayerCandidate]:
    """Every frontier point that keeps at least one layer, as a :class:`PerLayerCandidate` (cost order)."""
    out = []
    for cost, value, choice in zip(frontier.cost, frontier.value, frontier.choice):
        kept = [layer for layer, k in enumerate(choice) if menu.heads[k] > 0]
        if not kept:
            continue
        arch = PerLayerArch(hidden, head_dim, tuple(int(menu.heads[choice[la]]) for la in kept),
                            tuple(int(menu.neurons[choice[la]]) for la in kept), vocab_size, max_positions,
                            type_vocab_size)
        out.append(PerLayerCandidate(arch, tuple(kept), float(cost), float(value)))
    return out


def thin(candidates: Sequence[PerLayerCandidate], points: int) -> list[PerLayerCandidate]:
    """At most ``points`` of ``candidates`` (cost order), evenly spaced along the frontier, both ends kept."""
    check_int("points", points)
    if len(candidates) <= points:
        return list(candidates)
    keep = np.unique(np.linspace(0, len(candidates) - 1, points).round().astype(np.int64))
    return [candidates[int(k)] for k in keep]


def per_layer_space(head_importance: np.ndarray, neuron_importance: np.ndarray, layer_importance: np.ndarray, *,
                    teacher_hidden: int, head_dim: int, hidden: Sequence[int], vocab_size: int, max_positions: int,
                    type_vocab_size: int, points: int = 24, delta: float = 0.01, seq_len: int = 128,
                    max_flops: float | None = None) -> list[PerLayerCandidate]:
    """The candidates Algorithm 1 runs on with ``--per-layer``: for every hidden size, the knapsack frontier of
    FLOPs (one sequence of ``seq_len`` tokens) vs retained importance, cut at ``max_flops`` (the user's budget,
    when stated) and thinned to ``points`` per hidden size; every point as a :class:`PerLayerCandidate`."""
    out: list[PerLayerCandidate] = []
    for h in sorted(set(int(v) for v in hidden)):
        if not 0 < h <= teacher_hidden or h % head_dim:
            raise ValueError(f"per-layer hidden size {h} must be a multiple of head_dim={head_dim} in "
                             f"(0, {teacher_hidden}]")
        menu = layer_menus(head_importance, neuron_importance, hidden=h, head_dim=head_dim,
                           layer_importance=layer_importance, cost="flops", seq_len=seq_len)
        cands = frontier_archs(per_layer_frontier(menu, delta), menu, hidden=h, head_dim=head_dim,
                               vocab_size=vocab_size, max_positions=max_positions, type_vocab_size=type_vocab_size)
        if max_flops is not None:
            cands = [c for c in cands if c.cost <= max_flops]
        out += thin(cands, points)
    if not out:
        raise ValueError(f"no per-layer architecture fits the budget of {max_flops!r} FLOPs")
    return out
