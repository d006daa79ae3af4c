"""The knapsack FPTAS: its (1 − δ) guarantee against brute force at every budget, C++ equal to the Python
reference, and bad input rejected with the value in the message."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import exact_best, layer_frontier_reference

import bortfast
from bortfast import _core
from bortfast.search.knapsack import Frontier, best_under_budget, layer_frontier

# Small pools make ties (equal costs, equal values, zero-value "drop" options) common; the wide floats spread the
# values over many binary exponents, so several DP passes run.
numbers = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]),
    st.floats(1e-6, 100.0),
    st.floats(1e-4, 1e4),
)
deltas = st.one_of(st.sampled_from([0.01, 0.1, 0.25, 0.5, 0.9]), st.floats(0.01, 0.99))


@st.composite
def instances(draw, max_layers=5, max_options=5):
    n_layers = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, max_options)) for _ in range(n_layers)]
    costs = [[draw(numbers) for _ in range(k)] for k in sizes]
    values = [[draw(numbers) for _ in range(k)] for k in sizes]
    return costs, values


def fold(menus, picks) -> float:
    total = 0.0
    for layer, k in enumerate(picks):
        total += menus[layer][k]
    return total


def all_choices(costs, values) -> list[tuple[float, float]]:
    """(cost, value) of every full choice, summed in layer order like the DP."""
    return [(fold(costs, p), fold(values, p)) for p in itertools.product(*[range(len(m)) for m in costs])]


def assert_valid_frontier(front: Frontier, costs, values) -> None:
    n_layers = len(costs)
    assert front.choice.shape == (len(front), n_layers)
    assert len(front) >= 1
    assert np.all(np.diff(front.cost) > 0) and np.all(np.diff(front.value) > 0)
    for i in range(len(front)):
        picks = front.choice[i].tolist()
        assert all(0 <= k < len(costs[layer]) for layer, k in enumerate(picks))
        assert front.cost[i] == fold(costs, picks)
        assert front.value[i] == fold(values, picks)
    assert front.cost[0] == min(c for c, _ in all_choices(costs, values))


# --- the guarantee --------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(instances(), deltas)
def test_frontier_is_within_delta_of_the_optimum_at_every_budget(instance, delta):
    costs, values = instance
    front = layer_frontier(costs, values, delta)
    assert_valid_frontier(front, costs, values)
    # OPT(B) and the frontier's answer are step functions that change only at the cost of some full choice, so
    # checking every such cost checks every budget >= the cheapest full choice.
    choices = sorted(all_choices(costs, values))
    best_so_far = -math.inf
    for cost, value in choices:
        best_so_far = max(best_so_far, value)  # OPT(cost): choices are sorted by cost
        point = best_under_budget(front, cost)
        assert front.cost[point] <= cost
        assert front.value[point] >= (1 - delta) * best_so_far - 1e-12 * best_so_far, (cost, best_so_far)


@settings(max_examples=50, deadline=None)
@given(instances(max_layers=4, max_options=4), deltas, st.data())
def test_exact_best_is_the_brute_force_optimum(instance, delta, data):
    costs, values = instance
    choices = all_choices(costs, values)
    budget = data.draw(st.sampled_from([c for c, _ in choices]))
    value, picks = exact_best(costs, values, budget)
    assert value == max(v for c, v in choices if c <= budget)
    assert fold(costs, picks) <= budget and fold(values, picks) == value
    front = layer_frontier(costs, values, delta)
    assert front.value[best_under_budget(front, budget)] >= (1 - delta) * value * (1 - 1e-12)


def test_small_delta_finds_the_exact_frontier_on_integers():
    # Integer values and delta below 1 / (L * max value) make every rounding exact: the frontier is the exact one.
    costs = [[0, 3, 5, 9], [0, 2, 7], [0, 4, 4, 6, 8]]
    values = [[0, 2, 5, 6], [0, 3, 4], [0, 1, 3, 5, 7]]
    front = layer_frontier(costs, values, 0.001)
    for budget in range(0, 23):
        assert front.value[best_under_budget(front, budget)] == exact_best(costs, values, budget)[0]


# --- C++ equals the reference -----------------------------------------------------------------------------------------


def assert_same_frontier(a: Frontier, b: Frontier) -> None:
    np.testing.assert_array_equal(a.cost, b.cost)
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(a.choice, b.choice)
    assert a.choice.dtype == b.choice.dtype == np.int64


@settings(max_examples=300, deadline=None)
@given(instances(max_layers=6, max_options=6), deltas)
def test_cpp_equals_python_reference(instance, delta):
    costs, values = instance
    assert_same_frontier(layer_frontier(costs, values, delta), layer_frontier_reference(costs, values, delta))


def test_cpp_equals_python_reference_on_a_realistic_menu():
    # Per layer: keep a of 4 heads and i of 4 FFN blocks (16 options, a = i = 0 drops the layer); cost additive,
    # importance concave and decaying with depth.
    rng = np.random.default_rng(0)
    costs, values = [], []
    for layer in range(6):
        head_imp = np.sort(rng.exponential(1.0, 4))[::-1].cumsum() * 0.8**layer
        ffn_imp = np.sort(rng.exponential(1.0, 4))[::-1].cumsum() * 0.8**layer
        cs, vs = [], []
        for a, i in itertools.product(range(5), range(5)):
            cs.append(3.0 * a + 5.0 * i)
            vs.append((head_imp[a - 1] if a else 0.0) + (ffn_imp[i - 1] if i else 0.0))
        costs.append(cs)
        values.append(vs)
    front = layer_frontier(costs, values, 0.05)
    assert_same_frontier(front, layer_frontier_reference(costs, values, 0.05))
    assert len(front) > 20


def test_padded_array_input_and_reexport():
    costs = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 1.5]])
    values = np.array([[0.0, 1.0, 1.8], [0.0, 2.5, 1.0]])
    front = bortfast.layer_frontier(costs, values, 0.1)
    assert "layer_frontier" in bortfast.__all__
    assert_same_frontier(front, layer_frontier_reference(costs.tolist(), values.tolist(), 0.1))
    assert front.delta == 0.1
    # The whole budget range: the cheapest choice, then the best everything.
    assert best_under_budget(front, 0.0) == 0 and front.value[0] == 0.0
    assert front.value[best_under_budget(front, math.inf)] == 1.8 + 2.5


# --- bad input --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [layer_frontier, layer_frontier_reference])
@pytest.mark.parametrize(
    ("costs", "values", "delta", "match"),
    [
        ([[1.0, -1.0]], [[1.0, 2.0]], 0.1, r"costs.*layer 0, option 1.*-1"),
        ([[1.0, math.inf]], [[1.0, 2.0]], 0.1, r"costs.*inf"),
        ([[1.0], [2.0]], [[1.0], [math.nan]], 0.1, r"values.*layer 1, option 0.*nan"),
        ([[1.0]], [[-0.5]], 0.1, r"values.*-0.5"),
        ([[1.0]], [[1e-300]], 0.1, r"values.*1e-300"),
        ([[1.0], []], [[1.0], []], 0.1, r"layer 1 has an empty menu"),
        ([], [], 0.1, r"at least one layer"),
        ([[1.0, 2.0]], [[1.0, 2.0, 3.0]], 0.1, r"layer 0 has 2 costs but 3 values"),
        ([[1.0], [2.0]], [[1.0]], 0.1, r"one menu per layer, got 2 and 1"),
        ([[1.0]], [[1.0]], 0.0, r"delta must be in \(0, 1\), got 0"),
        ([[1.0]], [[1.0]], 1.0, r"delta must be in \(0, 1\), got 1"),
        ([[1.0]], [[1.0]], -0.5, r"delta must be in \(0, 1\), got -0.5"),
        ([[1.0]], [[1.0]], math.nan, r"delta must be in \(0, 1\), got nan"),
        ([[1.0]] * 24, [[1.0]] * 24, 1e-9, r"delta=1e-09 is too small for 24 layers"),
        ([[1.0, 1e308]] * 3, [[1.0, 2.0]] * 3, 0.1, r"costs of a full choice overflow"),
    ],
)
def test_bad_input_raises_value_error_naming_the_value(fn, costs, values, delta, match):
    with pytest.raises(ValueError, match=match):
        fn(costs, values, delta)


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="delta must be a real number"):
        layer_frontier([[1.0]], [[1.0]], "0.1")
    with pytest.raises(TypeError, match="costs of layer 0 must hold real numbers"):
        layer_frontier([["a"]], [[1.0]], 0.1)


def test_core_boundary_checks_shapes_and_dtypes():
    c, v = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="costs must have dtype float64, got float32"):
        _core.layer_frontier(c.astype(np.float32), v, np.array([0, 3]), 0.1)
    with pytest.raises(TypeError, match="offsets must have dtype int64"):
        _core.layer_frontier(c, v, np.array([0.0, 3.0]), 0.1)
    with pytest.raises(ValueError, match=r"same length, got shapes \(3,\) and \(2,\)"):
        _core.layer_frontier(c, v[:2], np.array([0, 3]), 0.1)
    with pytest.raises(ValueError, match=r"offsets\[-1\] must equal the number of options 3, got 2"):
        _core.layer_frontier(c, v, np.array([0, 2]), 0.1)
    with pytest.raises(ValueError, match=r"offsets\[0\] must be 0, got 1"):
        _core.layer_frontier(c, v, np.array([1, 3]), 0.1)
    with pytest.raises(ValueError, match=r"layer 1 has an empty menu"):
        _core.layer_frontier(c, v, np.array([0, 4, 3]), 0.1)  # would read past the end if not rejected
    with pytest.raises(ValueError, match=r"at least one layer"):
        _core.layer_frontier(c[:0], v[:0], np.array([0]), 0.1)
    with pytest.raises(ValueError, match=r"rank 1"):
        _core.layer_frontier(c.reshape(3, 1), v, np.array([0, 3]), 0.1)


def test_budget_below_the_cheapest_choice_names_the_budget():
    front = layer_frontier([[2.0, 3.0], [1.0, 4.0]], [[0.0, 1.0], [0.0, 2.0]], 0.1)
    assert front.cost[0] == 3.0
    with pytest.raises(ValueError, match=r"budget=2.5 is below the cheapest full choice, which costs 3.0"):
        best_under_budget(front, 2.5)
    with pytest.raises(ValueError, match=r"budget must be a number, got nan"):
        best_under_budget(front, math.nan)
    with pytest.raises(ValueError, match=r"budget=2.0 is below the cheapest full choice"):
        exact_best([[2.0, 3.0], [1.0, 4.0]], [[0.0, 1.0], [0.0, 2.0]], 2.0)
