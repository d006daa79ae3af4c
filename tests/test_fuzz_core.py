"""Fuzz the C++ boundary (bortfast._core) with hypothesis: random dtypes, shapes, strides (non-contiguous and
negative), empty and huge sizes, NaN/inf. Every call must either return a well-formed result or raise a Python
exception with a message; a crash would kill the test process."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bortfast import _core
from bortfast.space import encoder_flops_reference, param_count_reference

ALLOWED = (TypeError, ValueError, OverflowError, IndexError)

DTYPES = st.sampled_from([np.int64, np.int32, np.int8, np.uint64, np.float32, np.float64, np.bool_, np.complex64])
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def odd_arrays(draw, dtype=DTYPES, max_dims: int = 3):
    """Arrays of any dtype/rank, possibly a non-contiguous or negatively strided view, possibly NaN/inf."""
    dt = draw(dtype)
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    arr = draw(hnp.arrays(dt, shape, elements=hnp.from_dtype(np.dtype(dt), allow_nan=True, allow_infinity=True)
                          if np.dtype(dt).kind in "fc" else None))
    view = draw(st.sampled_from(["plain", "reversed", "strided", "transposed"]))
    if arr.ndim >= 1 and view == "reversed":
        arr = arr[::-1]
    elif arr.ndim >= 1 and view == "strided":
        arr = arr[::2]
    elif view == "transposed":
        arr = arr.T
    return arr


def int_archs(rows: int, rng: np.random.Generator) -> np.ndarray:
    heads = rng.integers(1, 9, size=rows)
    return np.stack([rng.integers(1, 9, rows), heads, heads * rng.integers(1, 9, rows), rng.integers(1, 99, rows)],
                    axis=1).astype(np.int64)


@FUZZ
@given(arr=odd_arrays(), batch=st.integers(-2, 4), seq_len=st.integers(-2, 300))
def test_encoder_flops_never_crashes(arr, batch, seq_len):
    try:
        out = _core.encoder_flops(arr, batch, seq_len)
    except ALLOWED as err:
        assert str(err)
        return
    # Accepted only: C-contiguous int64 (n, 4) with valid rows and positive sizes; answer equals the reference.
    assert arr.dtype == np.int64 and arr.ndim == 2 and arr.shape[1] == 4 and batch > 0 and seq_len > 0
    assert out.shape == (arr.shape[0],)
    for row, value in zip(arr.tolist(), out.tolist()):
        assert value == encoder_flops_reference(*row, batch, seq_len)


@FUZZ
@given(arr=odd_arrays(), vocab=st.integers(-1, 50), kind=st.sampled_from(["encoder", "masked-lm", "x", ""]))
def test_param_counts_never_crashes(arr, vocab, kind):
    try:
        out = _core.param_counts(arr, vocab, 16, 2, kind)
    except ALLOWED as err:
        assert str(err)
        return
    assert arr.dtype == np.int64 and arr.shape[1:] == (4,) and vocab > 0
    for row, value in zip(arr.tolist(), out.tolist()):
        assert value == param_count_reference(*row, vocab, 16, 2, kind)


@FUZZ
@given(rows=st.integers(0, 40), seed=st.integers(0, 2**32 - 1))
def test_valid_arch_arrays_agree_with_reference(rows, seed):
    archs = int_archs(rows, np.random.default_rng(seed))
    out = _core.param_counts(archs, 99, 16, 2, "encoder+pooler")
    assert out.tolist() == [param_count_reference(*r, 99, 16, 2, "encoder+pooler") for r in archs.tolist()]


@pytest.mark.parametrize("value", [2**62, -(2**62), 2**31])
def test_huge_values_raise_not_wrap(value):
    archs = np.array([[value, 1, abs(value), abs(value)]], dtype=np.int64)
    with pytest.raises(ALLOWED):
        _core.encoder_flops(archs, 1, 128)
    with pytest.raises(ALLOWED):
        _core.param_counts(archs, 30522, 512, 2, "encoder")


def test_non_array_inputs_are_type_errors():
    for bad in (None, [[4, 8, 1024, 768]], "archs", 3.5):
        with pytest.raises(TypeError, match="archs must be a numpy array"):
            _core.encoder_flops(bad, 1, 128)
