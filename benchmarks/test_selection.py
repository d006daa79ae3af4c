"""Selection core (pivots, W, argmax, exact and approximate Pareto fronts) on 10^6 synthetic candidates:
C++ vs the plain-Python reference (same answer, printed speed ratio). Target: C++ <= 1 s for the whole pass.

Run: pytest benchmarks/test_selection.py --benchmark-only -s
"""

import numpy as np
import pytest
import reference  # tests/reference.py (conftest.py puts tests/ on sys.path)

from bortfast.search import selection

N = 1_000_000
EPS = 4
DELTA = 0.05


@pytest.fixture(scope="module")
def candidates() -> dict:
    rng = np.random.default_rng(0)
    # Parameters and latency correlated (as for real architectures), error anti-correlated with size.
    p = np.exp(rng.normal(17.0, 1.0, N))
    i = p * np.exp(rng.normal(0.0, 0.3, N))
    e = 1.0 / np.log(p) * np.exp(rng.normal(0.0, 0.2, N))
    return {"p": p, "i": i, "e": e, "p_T": float(p.max()) * 1.01, "i_T": float(i.max()) * 1.01}


def cpp_selection(c):
    pivots = selection.interval_pivots(c["p"], EPS)
    w = selection.w_coefficients(c["p"], c["i"], c["e"], c["p_T"], c["i_T"])
    best = selection.argmax(w)
    points = np.stack([c["p"], c["i"], c["e"]], axis=1)
    return pivots, w, best, selection.pareto_front(points), selection.approx_pareto_front(points, DELTA)


def python_selection(c):
    p, i, e = c["p"].tolist(), c["i"].tolist(), c["e"].tolist()
    pivots = reference.interval_pivots_reference(p, EPS)
    w = reference.w_coefficients_reference(p, i, e, c["p_T"], c["i_T"])
    best = reference.argmax_reference(w)
    points = list(zip(p, i, e))
    return (pivots, w, best, reference.pareto_front_reference(points),
            reference.approx_pareto_front_reference(points, DELTA))


_times: dict[str, float] = {}


@pytest.mark.benchmark(group="selection-1e6")
def test_python_reference(benchmark, candidates):
    pivots, w, best, front, approx = benchmark.pedantic(python_selection, args=(candidates,), rounds=1,
                                                        iterations=1)
    c_pivots, c_w, c_best, c_front, c_approx = cpp_selection(candidates)
    np.testing.assert_array_equal(pivots, c_pivots)
    np.testing.assert_allclose(w, c_w, rtol=1e-14)
    assert best == c_best
    np.testing.assert_array_equal(front, c_front)
    np.testing.assert_array_equal(approx, c_approx)
    if benchmark.stats:
        _times["python"] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="selection-1e6")
def test_cpp_core(benchmark, candidates):
    pivots, w, best, front, approx = benchmark.pedantic(cpp_selection, args=(candidates,), rounds=5, iterations=1)
    assert len(pivots) == N // EPS
    assert w[best] == w.max()
    assert 0 < len(approx) <= len(front) < N
    assert set(approx.tolist()) <= set(front.tolist())
    if benchmark.stats:
        median = benchmark.stats.stats.median
        print(f"\nselection core on {N} candidates: C++ {median * 1e3:.0f} ms (front {len(front)}, "
              f"approx front {len(approx)})", end="")
        if "python" in _times:
            print(f"; Python reference {_times['python'] * 1e3:.0f} ms -> C++ is {_times['python'] / median:.0f}x "
                  "faster", end="")
        print()
        assert median <= 1.0, f"selection core took {median:.2f} s on {N} candidates (target <= 1 s)"
