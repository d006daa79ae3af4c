"""The C++ selection core agrees with its plain-Python reference and with brute force on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import (
    approx_pareto_front_reference,
    argmax_reference,
    interval_pivots_reference,
    pareto_front_reference,
    stable_order_reference,
    w_coefficients_reference,
)

from bortfast import _core
from bortfast.search import selection
from bortfast.search.selection import (
    approx_pareto_front,
    argmax,
    interval_pivots,
    pareto_front,
    stable_order,
    w_coefficients,
)

# Small value pools make ties and duplicate points common.
small_values = st.lists(st.integers(0, 6).map(float), min_size=0, max_size=40)
any_values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=40)
positive = st.one_of(st.sampled_from([1.0, 2.0, 3.0, 1.05, 1.1]), st.floats(1e-3, 1e3))
points_small = st.lists(st.tuples(*[st.integers(0, 4).map(float)] * 3), min_size=0, max_size=40)
points_positive = st.lists(st.tuples(positive, positive, positive), min_size=0, max_size=40)


def as_points(rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def dominates(a, b) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def brute_front(rows) -> list[int]:
    return [k for k, b in enumerate(rows) if not any(dominates(a, b) for a in rows)]


# --- ordering and pivots ---------------------------------------------------------------------------------------------


@given(st.one_of(small_values, any_values))
def test_stable_order_matches_reference_and_numpy(values):
    order = stable_order(values)
    assert order.dtype == np.int64
    assert order.tolist() == stable_order_reference(values)
    assert order.tolist() == np.argsort(np.array(values, dtype=np.float64), kind="stable").tolist()


@given(st.one_of(small_values, any_values).filter(len), st.data())
def test_interval_pivots_match_reference(values, data):
    eps = data.draw(st.integers(1, len(values)))
    pivots = interval_pivots(values, eps)
    assert pivots.tolist() == interval_pivots_reference(values, eps)
    assert len(pivots) == math.ceil(len(values) / eps)
    order = stable_order_reference(values)
    assert pivots.tolist() == [order[k] for k in range(0, len(values), eps)]
    assert pivots[0] == order[0]  # the smallest p-hat is always a pivot


def test_interval_pivots_positions_documented():
    values = [50.0, 10.0, 40.0, 20.0, 30.0, 60.0, 70.0]  # sorted order: 1, 3, 4, 2, 0, 5, 6
    assert interval_pivots(values, 1).tolist() == [1, 3, 4, 2, 0, 5, 6]
    assert interval_pivots(values, 3).tolist() == [1, 2, 6]  # positions 0, 3, 6: last included when 3 | 6
    assert interval_pivots(values, 4).tolist() == [1, 0]  # positions 0, 4: the last position 6 is not a pivot
    assert interval_pivots(values, 7).tolist() == [1]
    assert interval_pivots([5.0, 5.0, 5.0], 2).tolist() == [0, 2]  # ties broken by index
    assert interval_pivots([], 1).tolist() == []


@pytest.mark.parametrize("eps", [0, -1, 4])
def test_interval_pivots_reject_bad_eps(eps):
    with pytest.raises(ValueError, match=rf"eps must be an integer in \[1, 3\].*got {eps}"):
        interval_pivots([1.0, 2.0, 3.0], eps)
    with pytest.raises(ValueError, match="eps must be"):
        interval_pivots_reference([1.0, 2.0, 3.0], eps)


def test_interval_pivots_reject_non_integer_eps():
    with pytest.raises(TypeError, match="eps must be an int"):
        interval_pivots([1.0, 2.0], 1.5)


# --- W-coefficient and argmax -----------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.floats(0, 2000), st.floats(0, 2000), st.floats(0, 50)), min_size=0, max_size=40),
       st.floats(1, 1000), st.floats(1, 1000), st.sampled_from([0.0, 1e-12, 1e-3]))
def test_w_matches_reference(rows, p_T, i_T, eps_small):
    rows = [(p, i, e if e + eps_small > 1e-300 else 1.0) for p, i, e in rows]
    p, i, e = (np.array([r[j] for r in rows], dtype=np.float64) for j in range(3))
    w = w_coefficients(p, i, e, p_T, i_T, eps_small)
    ref = w_coefficients_reference(p.tolist(), i.tolist(), e.tolist(), p_T, i_T, eps_small)
    np.testing.assert_allclose(w, ref, rtol=1e-14, atol=0)
    assert (w >= 0).all()
    assert all(w[k] == 0 for k in range(len(rows)) if p[k] >= p_T or i[k] >= i_T)


def test_w_values():
    w = w_coefficients([50.0, 100.0, 150.0, 0.0], [20.0, 40.0, 80.0, 0.0], [0.5, 1.0, 1.0, 2.0], 100.0, 40.0, 0.0)
    # 0.5 * 0.5 / 0.5; T itself 0; larger and slower than T 0 (not (-0.5)*(-1.0)); the empty model 1 * 1 / 2.
    assert w.tolist() == [0.5, 0.0, 0.0, 0.5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(p=[1.0, float("nan")]), r"p\[1\] must be finite, got nan"),
        (dict(i=[1.0, float("inf")]), r"i\[1\] must be finite, got inf"),
        (dict(e=[-1.0, 1.0]), r"e\[0\] must be >= 0, got -1"),
        (dict(e=[0.0, 1.0], eps_small=0.0), r"e\[0\] \+ eps_small must be > 0"),
        (dict(p_T=0.0), "p_T must be finite and positive, got 0"),
        (dict(i_T=float("nan")), "i_T must be finite and positive, got nan"),
        (dict(e=[1.0]), "same length"),
        (dict(e=[1e-320, 1.0], eps_small=0.0), "W overflows at index 0"),
    ],
)
def test_w_rejects_bad_input(kwargs, message):
    args = dict(p=[1.0, 2.0], i=[1.0, 2.0], e=[1.0, 1.0], p_T=10.0, i_T=10.0, eps_small=1e-12) | kwargs
    with pytest.raises(ValueError, match=message):
        w_coefficients(**args)


@given(st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(allow_nan=False)), min_size=1, max_size=40))
def test_argmax_matches_reference(values):
    k = argmax(values)
    assert k == argmax_reference(values) == int(np.argmax(np.array(values)))  # numpy: first occurrence


def test_argmax_ties_and_errors():
    assert argmax([1.0, 3.0, 3.0, 2.0]) == 1
    with pytest.raises(ValueError, match=r"values\[2\] is NaN"):
        argmax([1.0, 3.0, float("nan")])
    with pytest.raises(ValueError, match="empty"):
        argmax(np.zeros(0))


# --- Pareto fronts ----------------------------------------------------------------------------------------------------


@given(st.one_of(points_small, points_positive))
def test_pareto_front_matches_reference_and_brute_force(rows):
    front = pareto_front(as_points(rows))
    assert front.dtype == np.int64
    assert front.tolist() == pareto_front_reference(rows) == brute_front(rows)


def test_pareto_front_duplicates_kept_and_single():
    rows = [(1.0, 2.0, 3.0), (1.0, 2.0, 3.0), (1.0, 2.0, 4.0), (0.0, 9.0, 9.0), (2.0, 1.0, 3.0)]
    assert pareto_front(as_points(rows)).tolist() == [0, 1, 3, 4]
    assert pareto_front(as_points([(5.0, 5.0, 5.0)])).tolist() == [0]
    assert pareto_front(np.zeros((0, 3))).tolist() == []


@settings(max_examples=200)
@given(points_positive, st.sampled_from([0.01, 0.1, 0.5, 1.0, 3.0]))
def test_approx_front_matches_reference_and_covers_exact_front(rows, delta):
    pts = as_points(rows)
    approx = approx_pareto_front(pts, delta)
    assert approx.tolist() == approx_pareto_front_reference(rows, delta)
    exact = set(brute_front(rows))
    assert set(approx.tolist()) <= exact  # representatives are exact-front points
    assert len(approx) <= len(exact)
    slack = (1 + delta) * (1 + 1e-12)  # rounding in log/floor
    for q in exact:
        assert any((pts[r] <= slack * pts[q]).all() for r in approx), f"exact-front point {q} not covered"


def test_approx_front_merges_a_cell():
    rows = [(1.0, 1.0, 1.0), (1.01, 1.0, 0.999), (10.0, 10.0, 0.5)]
    assert pareto_front(as_points(rows)).tolist() == [0, 1, 2]
    # 1.0 and 1.01 share a cell of the 1.1 grid; 0.999 falls one cell lower, so cell (0, 0, -1) dominates cell
    # (0, 0, 0) and point 0 goes -- still (1+delta)-dominated by point 1.
    assert approx_pareto_front(as_points(rows), 0.1).tolist() == [1, 2]
    rows = [(1.0, 1.0, 1.0), (1.01, 1.0, 1.001)]
    assert approx_pareto_front(as_points(rows), 0.1).tolist() == [0]  # same cell: one representative


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[1.0, float("nan"), 1.0]], r"points\[0, 1\] must be finite, got nan"),
        ([[1.0, 1.0, 1.0], [1.0, 1.0, -float("inf")]], r"points\[1, 2\] must be finite, got -inf"),
    ],
)
def test_fronts_reject_non_finite(points, message):
    with pytest.raises(ValueError, match=message):
        pareto_front(np.array(points))
    with pytest.raises(ValueError, match=message):
        approx_pareto_front(np.array(points), 0.1)
    with pytest.raises(ValueError, match=message):
        pareto_front_reference(points)


def test_approx_front_rejects_non_positive_and_bad_delta():
    with pytest.raises(ValueError, match=r"points\[1, 0\] must be positive .*got 0"):
        approx_pareto_front(np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]), 0.1)
    with pytest.raises(ValueError, match=r"points\[1, 0\] must be positive"):
        approx_pareto_front_reference([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]], 0.1)
    for delta in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="delta must be finite and > 0"):
            approx_pareto_front(np.ones((2, 3)), delta)


# --- the C++ boundary ------------------------------------------------------------------------------------------------


def test_core_rejects_wrong_dtype_shape_and_layout():
    with pytest.raises(TypeError, match="values must have dtype float64, got int64"):
        _core.stable_order(np.arange(3))
    with pytest.raises(TypeError, match="points must be a numpy array"):
        _core.pareto_front([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"points must have shape \(n, 3\).*got \(2, 2\)"):
        _core.pareto_front(np.ones((2, 2)))
    with pytest.raises(ValueError, match="rank 1"):
        _core.argmax(np.ones((2, 2)))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.approx_pareto_front(np.ones((3, 6))[:, ::2], 0.1)


def test_wrappers_convert_ints_and_reject_non_numbers():
    assert stable_order(np.array([3, 1, 2])).tolist() == [1, 2, 0]
    with pytest.raises(TypeError, match="values must hold real numbers, got dtype <U1"):
        stable_order(["a", "b"])
    with pytest.raises(TypeError, match="points must hold real numbers, got dtype bool"):
        pareto_front(np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"points must have shape \(n, 3\)"):
        selection.pareto_front(np.ones((2, 4)))
