"""The knapsack FPTAS (bortfast.search.knapsack) on 24 layers x 64 options at delta = 0.01: C++ vs the plain-Python
reference (the same frontier, printed speed ratio). Target: C++ well under 1 s.

The menus look like the per-layer problem of issue 17: per BERT-base layer keep a of 12 heads (a in 0, 1, 2, 4,
..., 12) and i of 3072 FFN neurons (8 widths), cost = the parameters kept (millions), value = the importance kept
(most important units first: a concave, increasing sum of exponential scores), a = i = 0 drops the layer.

Run: pytest benchmarks/test_knapsack.py --benchmark-only -s
"""

import itertools

import numpy as np
import pytest
from reference import layer_frontier_reference  # tests/reference.py (conftest.py puts tests/ on sys.path)

from bortfast.search.knapsack import best_under_budget, layer_frontier

LAYERS = 24
DELTA = 0.01
HEADS = [0, 1, 2, 4, 6, 8, 10, 12]
NEURONS = [0, 256, 512, 768, 1024, 1536, 2048, 3072]


@pytest.fixture(scope="module")
def menus() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    costs, values = [], []
    for layer in range(LAYERS):
        head_scores = np.sort(rng.exponential(1.0, 12))[::-1]
        ffn_scores = np.sort(rng.exponential(1.0, 3072))[::-1] / 300
        head_kept = np.concatenate([[0.0], head_scores.cumsum()]) * rng.uniform(0.2, 1.0)
        ffn_kept = np.concatenate([[0.0], ffn_scores.cumsum()]) * rng.uniform(0.2, 1.0) / (1 + layer / LAYERS)
        cs, vs = [], []
        for a, i in itertools.product(HEADS, NEURONS):
            kept_any = a > 0 or i > 0
            cs.append((a * 64 * 768 * 4 + i * 768 * 2 + (768 * 4 if kept_any else 0)) / 1e6)  # Q,K,V,O + FFN + LNs
            vs.append(head_kept[a] + ffn_kept[i])
        costs.append(cs)
        values.append(vs)
    return np.array(costs), np.array(values)  # (L, K) each


_times: dict[str, float] = {}


@pytest.mark.benchmark(group="knapsack-24x64")
def test_python_reference(benchmark, menus):
    costs, values = menus
    ref = benchmark.pedantic(layer_frontier_reference, args=(costs, values, DELTA), rounds=1, iterations=1)
    cpp = layer_frontier(costs, values, DELTA)
    np.testing.assert_array_equal(ref.cost, cpp.cost)
    np.testing.assert_array_equal(ref.value, cpp.value)
    np.testing.assert_array_equal(ref.choice, cpp.choice)
    if benchmark.stats:
        _times["python"] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="knapsack-24x64")
def test_cpp_core(benchmark, menus):
    costs, values = menus
    front = benchmark.pedantic(layer_frontier, args=(costs, values, DELTA), rounds=5, iterations=1)
    assert np.all(np.diff(front.cost) > 0) and np.all(np.diff(front.value) > 0)
    # With no budget limit the optimum keeps every unit: the last point is within delta of it (not always equal:
    # rounding may find a cheaper choice it cannot tell apart). Half the parameters keep a sensible share.
    everything = values.max(axis=1).sum()
    assert (1 - DELTA) * everything <= front.value[-1] <= everything
    half = best_under_budget(front, costs.max(axis=1).sum() / 2)
    assert 0.5 < front.value[half] / front.value[-1] < 1.0
    if benchmark.stats:
        median = benchmark.stats.stats.median
        print(f"\nknapsack FPTAS {LAYERS} layers x {costs.shape[1]} options, delta={DELTA}: C++ {median * 1e3:.0f} ms "
              f"({len(front)} frontier points)", end="")
        if "python" in _times:
            print(f"; Python reference {_times['python']:.1f} s -> C++ is {_times['python'] / median:.0f}x faster",
                  end="")
        print()
        assert median <= 1.0, f"knapsack FPTAS took {median:.2f} s (target well under 1 s)"
