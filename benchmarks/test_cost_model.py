"""C++ cost model vs the plain-Python reference on 10^6 architectures (same answer, printed speed ratio).

Run: pytest benchmarks/test_cost_model.py --benchmark-only
"""

import numpy as np
import pytest
from reference import encoder_flops_reference, param_count_reference  # tests/reference.py, via conftest.py

from bortfast import encoder_flops, param_counts

N = 1_000_000


@pytest.fixture(scope="module")
def archs() -> np.ndarray:
    rng = np.random.default_rng(0)
    heads = rng.integers(1, 17, size=N)
    return np.stack([rng.integers(1, 25, N), heads, heads * rng.integers(1, 129, N), rng.integers(1, 4097, N)],
                    axis=1).astype(np.int64)


def cpp_cost_model(archs):
    return param_counts(archs, "masked-lm"), encoder_flops(archs, 1, 128)


def python_cost_model(archs):
    rows = archs.tolist()
    return (np.array([param_count_reference(*r, kind="masked-lm") for r in rows], dtype=np.int64),
            np.array([encoder_flops_reference(*r, 1, 128) for r in rows], dtype=np.int64))


_times: dict[str, float] = {}


@pytest.mark.benchmark(group="cost-model-1e6")
def test_python_reference(benchmark, archs):
    params, flops = benchmark.pedantic(python_cost_model, args=(archs,), rounds=1, iterations=1)
    cpp_params, cpp_flops = cpp_cost_model(archs)
    np.testing.assert_array_equal(params, cpp_params)
    np.testing.assert_array_equal(flops, cpp_flops)
    if benchmark.stats:
        _times["python"] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="cost-model-1e6")
def test_cpp_core(benchmark, archs):
    params, flops = benchmark(cpp_cost_model, archs)
    assert params.shape == flops.shape == (N,)
    assert (params > 0).all() and (flops > 0).all()
    if benchmark.stats and "python" in _times:
        ratio = _times["python"] / benchmark.stats.stats.median
        print(f"\ncost model on {N} archs: C++ is {ratio:.0f}x faster than the Python reference")
