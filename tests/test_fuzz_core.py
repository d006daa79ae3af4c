"""Fuzz the C++ boundary (bortfast._core) with hypothesis: random dtypes, shapes, strides (non-contiguous and
negative), empty and huge sizes, NaN/inf. Every call must either return a well-formed result or raise a Python
exception with a message; a crash would kill the test process."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import encoder_flops_reference, param_count_reference

from bortfast import _core

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


# --- selection core (csrc/selection.cc) ------------------------------------------------------------------------------
# Every accepted call must equal the plain-Python reference in tests/reference.py; a float64 C-contiguous
# array of the right rank that the core rejects must also be rejected by the reference (same contract, never a
# silent skip).

FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
SMALLISH = st.one_of(st.floats(-4, 4), st.sampled_from([0.0, 1e-300, 1e300, -0.0]), FLOAT)


@st.composite
def vectors(draw):
    """Mostly well-formed float64 vectors (duplicates, NaN/inf, extremes), sometimes any odd array."""
    if draw(st.integers(0, 3)) == 0:
        return draw(odd_arrays())
    n = draw(st.integers(0, 12))
    values = draw(st.lists(st.one_of(SMALLISH, st.sampled_from([1.0, 2.0])), min_size=n, max_size=n))
    return np.array(values, dtype=np.float64)


@st.composite
def point_sets(draw, positive: bool = False):
    """Mostly (n, 3) float64 arrays with ties and dominated points, sometimes any odd array."""
    if draw(st.integers(0, 3)) == 0:
        return draw(odd_arrays())
    n = draw(st.integers(0, 10))
    cell = st.sampled_from([1.0, 2.0, 3.0, 1.5]) if positive else st.sampled_from([-1.0, 0.0, 1.0, 2.0])
    rows = draw(st.lists(st.lists(st.one_of(cell, SMALLISH), min_size=3, max_size=3), min_size=n, max_size=n))
    return np.array(rows, dtype=np.float64).reshape(n, 3)


def well_formed(arr, ndim: int) -> bool:
    return (isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim == ndim
            and arr.flags.c_contiguous)


def agree(core_call, ref_call, accepted_shape_ok: bool):
    """Run the core; on success compare with the reference, on failure require a message (and, for well-formed
    arrays, that the reference rejects it too)."""
    try:
        out = core_call()
    except ALLOWED as err:
        assert str(err)
        if accepted_shape_ok:
            with pytest.raises(ValueError):
                ref_call()
        return None
    assert accepted_shape_ok, "the core accepted an array of the wrong dtype/rank/layout"
    expected = ref_call()
    got = out.tolist() if isinstance(out, np.ndarray) else out
    assert got == expected
    return out


@FUZZ
@given(values=vectors())
def test_stable_order_and_argmax_fuzz(values):
    ok = well_formed(values, 1)
    out = agree(lambda: _core.stable_order(values), lambda: reference.stable_order_reference(values), ok)
    if out is not None:
        assert out.dtype == np.int64 and sorted(out.tolist()) == list(range(len(values)))
    agree(lambda: _core.argmax(values), lambda: reference.argmax_reference(values.tolist()), ok)


@FUZZ
@given(values=vectors(), eps=st.one_of(st.integers(-3, 14), st.sampled_from([2**31, 2**62, -(2**63), 2**64])))
def test_interval_pivots_fuzz(values, eps):
    ok = well_formed(values, 1) and -(2**63) <= eps < 2**63
    agree(lambda: _core.interval_pivots(values, eps), lambda: reference.interval_pivots_reference(values, eps), ok)


@FUZZ
@given(p=vectors(), i=vectors(), e=vectors(), p_T=SMALLISH, i_T=SMALLISH, eps_small=SMALLISH,
       same_length=st.booleans())
def test_w_coefficients_fuzz(p, i, e, p_T, i_T, eps_small, same_length):
    if same_length and all(well_formed(a, 1) for a in (p, i, e)):
        n = min(len(p), len(i), len(e))
        p, i, e = (np.abs(a[:n]).copy() for a in (p, i, e))  # mostly valid (non-negative) inputs
    ok = all(well_formed(a, 1) for a in (p, i, e))
    out = agree(lambda: _core.w_coefficients(p, i, e, p_T, i_T, eps_small),
                lambda: reference.w_coefficients_reference(p.tolist(), i.tolist(), e.tolist(), p_T, i_T, eps_small),
                ok)
    if out is not None:
        assert out.dtype == np.float64 and np.isfinite(out).all() and (out >= 0).all()


@FUZZ
@given(points=point_sets())
def test_pareto_front_fuzz(points):
    ok = well_formed(points, 2) and points.shape[1] == 3
    out = agree(lambda: _core.pareto_front(points), lambda: reference.pareto_front_reference(points.tolist()), ok)
    if out is not None and len(points):
        assert len(out) >= 1  # a finite non-empty set always has a non-dominated point


@FUZZ
@given(points=point_sets(positive=True),
       delta=st.one_of(st.floats(0.01, 2), st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e-300, 1e300])))
def test_approx_pareto_front_fuzz(points, delta):
    ok = well_formed(points, 2) and points.shape[1] == 3
    agree(lambda: _core.approx_pareto_front(points, delta),
          lambda: reference.approx_pareto_front_reference(points.tolist(), delta), ok)


@pytest.mark.parametrize("name", ["stable_order", "argmax", "pareto_front"])
def test_selection_non_arrays_are_type_errors(name):
    for bad in (None, [1.0, 2.0], "values", 3.5):
        with pytest.raises(TypeError, match="must be a numpy array"):
            getattr(_core, name)(bad)


# --- fused encoder kernel (csrc/encoder.cc) --------------------------------------------------------------------------
# Parity is checked against a float64 numpy transcription of transformers' BertLayer (post-LayerNorm, GELU erf,
# additive (1 - mask) * finfo(float32).min); tests/test_kernel.py checks the same against torch itself.

SIZES = st.one_of(st.integers(-2, 9), st.sampled_from([2**20 + 1, 2**31, 2**62, 2**63 - 1, -(2**63)]))
_erf = np.vectorize(math.erf)


def layer_shapes(hidden: int, intermediate: int) -> dict[str, tuple[int, ...]]:
    h, i = hidden, intermediate
    shapes = {}
    for name in _core.encoder_tensor_names():
        if name.startswith("attention.self") or name.startswith("attention.output.dense"):
            shapes[name] = (h, h) if name.endswith("weight") else (h,)
        elif name.startswith("intermediate"):
            shapes[name] = (i, h) if name.endswith("weight") else (i,)
        elif name.startswith("output.dense"):
            shapes[name] = (h, i) if name.endswith("weight") else (h,)
        else:  # LayerNorms
            shapes[name] = (h,)
    return shapes


def numpy_encoder(weights: list[dict], x: np.ndarray, mask: np.ndarray, heads: int, eps: float) -> np.ndarray:
    def dense(v, w, prefix):
        return v @ w[prefix + ".weight"].T.astype(np.float64) + w[prefix + ".bias"]

    def layer_norm(v, g, b):
        mu = v.mean(-1, keepdims=True)
        var = ((v - mu) ** 2).mean(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + eps) * g + b

    x = x.astype(np.float64)
    B, L, H = x.shape
    d = H // heads
    bias = ((1.0 - mask.astype(np.float64)) * np.finfo(np.float32).min)[:, None, None, :]
    for w in weights:
        q, k, v = (dense(x, w, f"attention.self.{n}").reshape(B, L, heads, d).transpose(0, 2, 1, 3)
                   for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        p = np.exp(s - s.max(-1, keepdims=True))
        ctx = (p / p.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        a = layer_norm(dense(ctx, w, "attention.output.dense") + x, w["attention.output.LayerNorm.weight"],
                       w["attention.output.LayerNorm.bias"])
        inter = dense(a, w, "intermediate.dense")
        inter = 0.5 * inter * (1.0 + _erf(inter / math.sqrt(2.0)))
        x = layer_norm(dense(inter, w, "output.dense") + a, w["output.LayerNorm.weight"], w["output.LayerNorm.bias"])
    return x


@FUZZ
@given(layers=SIZES, heads=SIZES, hidden=SIZES, intermediate=SIZES,
       eps=st.one_of(st.sampled_from([1e-12, 1e-5]), FLOAT))
def test_encoder_constructor_fuzz(layers, heads, hidden, intermediate, eps):
    try:
        enc = _core.Encoder(layers, heads, hidden, intermediate, eps)
    except ALLOWED as err:
        assert str(err)
        return
    assert min(layers, heads, hidden, intermediate) > 0 and hidden % heads == 0 and eps > 0 and math.isfinite(eps)
    assert (enc.layers, enc.heads, enc.hidden, enc.intermediate) == (layers, heads, hidden, intermediate)


def test_encoder_huge_but_in_range_sizes_fail_cleanly():
    # Each size is within the per-dimension limits, but the weights would need terabytes: a clear error, no abort.
    # (Before the limit these paged through memory until std::bad_alloc, or aborted under ASan.)
    with pytest.raises(ValueError, match=r"more than the limit 2\^31"):
        _core.Encoder(1, 1, 2**20, 2**20)
    with pytest.raises(ValueError, match=r"more than the limit 2\^31"):
        _core.Encoder(4096, 1, 2**12, 2**12)
    assert _core.Encoder(1, 16, 1024, 4096).hidden == 1024  # a BERT-large layer (50 MB) still fits


@st.composite
def encoder_cases(draw):
    heads = draw(st.integers(1, 3))
    hidden = heads * draw(st.integers(1, 4))
    return (draw(st.integers(1, 2)), heads, hidden, draw(st.integers(1, 9)), draw(st.integers(1, 3)),
            draw(st.integers(1, 5)), draw(st.integers(0, 2**32)))


@FUZZ
@given(case=encoder_cases(), threads=st.integers(1, 3))
def test_encoder_forward_matches_numpy_reference(case, threads):
    layers, heads, hidden, inter, B, L, seed = case
    rng = np.random.default_rng(seed)
    enc = _core.Encoder(layers, heads, hidden, inter, 1e-5)
    weights = []
    for layer in range(layers):
        w = {}
        for name, shape in layer_shapes(hidden, inter).items():
            w[name] = rng.normal(0, 0.5, shape).astype(np.float32)
            if "LayerNorm.weight" in name:
                w[name] += 1
            enc.set_tensor(layer, name, w[name])
        weights.append(w)
    x = rng.normal(0, 1, (B, L, hidden)).astype(np.float32)
    mask = (rng.random((B, L)) < 0.7).astype(np.float32)
    mask[:, 0] = 1  # at least one attended position per row
    out = enc.forward(x, mask, threads)
    assert out.shape == (B, L, hidden) and out.dtype == np.float32
    np.testing.assert_allclose(out, numpy_encoder(weights, x, mask, heads, 1e-5), rtol=1e-3, atol=1e-3)


NAMES = st.one_of(st.sampled_from(_core.encoder_tensor_names()), st.text(max_size=8),
                  st.sampled_from(["attention.self.query.weight\x00", "", "output.LayerNorm.weight "]))


@FUZZ
@given(layer=st.one_of(st.integers(-2, 3), st.sampled_from([2**40, -(2**63), 2**64])), name=NAMES,
       arr=odd_arrays(st.sampled_from([np.float32, np.float64, np.int32]), max_dims=3),
       right_shape=st.booleans(), fill=st.sampled_from([0.0, float("nan"), float("inf"), 1e30]))
def test_encoder_set_tensor_fuzz(layer, name, arr, right_shape, fill):
    enc = _core.Encoder(2, 2, 4, 6)
    shapes = layer_shapes(4, 6)
    if right_shape and name in shapes:
        arr = np.full(shapes[name], fill, np.float32)
    try:
        enc.set_tensor(layer, name, arr)
    except ALLOWED as err:
        assert str(err)
        return
    assert 0 <= layer < 2 and name in shapes and arr.dtype == np.float32 and arr.shape == shapes[name]
    # Non-finite weights are the caller's business, but forward must still return a well-formed array.
    out = enc.forward(np.ones((1, 3, 4), np.float32), np.ones((1, 3), np.float32), 2)
    assert out.shape == (1, 3, 4) and out.dtype == np.float32


@FUZZ
@given(seed=st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([-1, 2**64])), std=SMALLISH,
       hidden=odd_arrays(st.sampled_from([np.float32]), max_dims=3),
       mask_values=st.sampled_from([0.0, 1.0, 0.5, -1.0, float("nan"), float("inf")]), threads=st.integers(-1, 300))
def test_encoder_init_random_and_forward_fuzz(seed, std, hidden, mask_values, threads):
    enc = _core.Encoder(1, 2, 4, 8)
    try:
        enc.init_random(seed, std)
    except ALLOWED as err:
        assert str(err)
        assert not 0 <= seed < 2**64
        return
    mask = np.full(hidden.shape[:2], mask_values, np.float32) if hidden.ndim >= 2 else np.ones(3, np.float32)
    try:
        out = enc.forward(hidden, mask, threads)
    except ALLOWED as err:
        assert str(err)
        return
    assert hidden.ndim == 3 and hidden.shape[2] == 4 and min(hidden.shape) > 0 and 1 <= threads <= 256
    assert out.shape == hidden.shape and out.dtype == np.float32
    if math.isfinite(std) and abs(std) < 4 and np.isfinite(hidden).all() and mask_values in (0.0, 1.0):
        assert np.isfinite(out).all()


def test_blas_info_and_tensor_names_are_well_formed():
    assert "OpenBLAS" in _core.blas_info() or _core.blas_info()
    names = _core.encoder_tensor_names()
    assert len(names) == len(set(names)) == 16 and all(isinstance(n, str) and n for n in names)
    assert isinstance(_core.cpu_has_avx2_fma(), bool)


def test_nan_input_propagates_without_undefined_behaviour():
    # A NaN reached the exp() approximation's float->int conversion and exponent shift (undefined behaviour, found
    # by the UBSan run of this file). Now it propagates like torch: the NaN batch item is NaN, the other is finite.
    enc = _core.Encoder(1, 2, 4, 8)
    enc.init_random(3)
    hidden = np.ones((2, 3, 4), np.float32)
    hidden[0, 1, 2] = np.nan
    out = enc.forward(hidden, np.ones((2, 3), np.float32), 1)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
