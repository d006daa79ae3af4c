"""The fused C++ encoder kernel against transformers' BertModel, and its boundary checks."""

from __future__ import annotations

import _tiny
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import BertConfig, BertForMaskedLM, BertModel

from bortfast import Arch
from bortfast.profile.kernel import TENSOR_NAMES, EncoderKernel


def tiny_config(**overrides) -> BertConfig:
    """tests/_tiny.py's config (vocab 99, hidden 32, 2 layers, 4 heads, intermediate 37), eager attention."""
    return _tiny.tiny_config(**{"attn_implementation": "eager", **overrides})


def reference(model: BertModel, ids: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings output, BertModel last_hidden_state) for the same token ids and padding mask."""
    with torch.no_grad():
        emb = model.embeddings(input_ids=ids)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return emb.numpy(), out.numpy()


def padded_mask(batch: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=gen)
    lengths[0] = seq_len  # one full row, so every batch has both kinds
    return (torch.arange(seq_len)[None, :] < lengths[:, None]).long()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("threads", [1, 2])
def test_parity_tiny_padded(attn, threads):
    torch.manual_seed(0)
    model = BertModel(tiny_config(attn_implementation=attn)).eval()
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 99, (4, 11), generator=gen)
    mask = padded_mask(4, 11, gen)
    assert (mask == 0).any()
    emb, ref = reference(model, ids, mask)
    kernel = EncoderKernel.from_bert(model)
    assert kernel.arch == Arch(2, 4, 32, 37)
    out = kernel.forward(emb, mask.numpy(), threads=threads)  # int64 mask, as transformers takes it
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["1,1,8,4", "3,2,24,96", "2,3,48,17"])
def test_parity_tiny_shapes(arch):
    a = Arch.parse(arch)
    torch.manual_seed(a.hidden)
    model = BertModel(tiny_config(layers=a.layers, heads=a.heads, hidden=a.hidden,
                                  intermediate=a.intermediate)).eval()
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 99, (3, 7), generator=gen)
    mask = padded_mask(3, 7, gen)
    emb, ref = reference(model, ids, mask)
    out = EncoderKernel.from_bert(model).forward(emb, mask.numpy().astype(np.float32), threads=2)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_parity_bort_shape():
    """The Bort architecture <4, 8, 1024, 768> with random weights, a short padded batch."""
    torch.manual_seed(0)
    config = tiny_config(layers=4, heads=8, hidden=1024, intermediate=768, attn_implementation="sdpa")
    model = BertModel(config).eval()
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 99, (2, 16), generator=gen)
    mask = padded_mask(2, 16, gen)
    emb, ref = reference(model, ids, mask)
    out = EncoderKernel.from_bert(model).forward(emb, mask.numpy(), threads=2)
    assert np.abs(out - ref).max() <= 1e-4


def test_state_dict_with_prefix_and_threads_agree():
    torch.manual_seed(0)
    mlm = BertForMaskedLM(tiny_config()).eval()
    state = mlm.state_dict()  # keys start with "bert."
    with pytest.raises(ValueError, match="heads="):
        EncoderKernel.from_bert(state)
    kernel = EncoderKernel.from_bert(state, heads=4, layer_norm_eps=mlm.config.layer_norm_eps)
    gen = torch.Generator().manual_seed(4)
    ids = torch.randint(0, 99, (2, 13), generator=gen)
    mask = padded_mask(2, 13, gen)
    emb, ref = reference(mlm.bert, ids, mask)
    one = kernel.forward(emb, mask.numpy(), threads=1)
    two = kernel.forward(emb, mask.numpy(), threads=2)
    np.testing.assert_allclose(one, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(one, two, atol=1e-5, rtol=0)
    # no mask = all ones
    np.testing.assert_allclose(kernel.forward(emb), kernel.forward(emb, np.ones((2, 13), np.float32)), atol=0)


def test_random_is_deterministic_and_finite():
    arch = Arch(2, 4, 64, 128)
    hidden = np.random.default_rng(0).standard_normal((2, 5, 64)).astype(np.float32)
    a = EncoderKernel.random(arch, seed=7).forward(hidden, threads=2)
    b = EncoderKernel.random(arch, seed=7).forward(hidden, threads=1)
    c = EncoderKernel.random(arch, seed=8).forward(hidden, threads=1)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.abs(a - c).max() > 1e-3
    # post-LayerNorm output with gamma=1, beta=0: every position is normalised
    np.testing.assert_allclose(a.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(a.std(-1), 1, atol=1e-3)


def test_rejects_unsupported_models_and_bad_weights():
    with pytest.raises(ValueError, match="hidden_act"):
        EncoderKernel.from_bert(BertModel(tiny_config(hidden_act="relu")))
    with pytest.raises(TypeError, match="from_bert expects"):
        EncoderKernel.from_bert([1, 2, 3])
    state = BertModel(tiny_config()).state_dict()
    bad = dict(state)
    bad["encoder.layer.1.intermediate.dense.weight"] = torch.zeros(37, 31)
    with pytest.raises(ValueError, match=r"layer 1 intermediate.dense.weight must have shape \(37, 32\)"):
        EncoderKernel.from_bert(bad, heads=4)
    bad = dict(state)
    bad["encoder.layer.0.output.LayerNorm.bias"] = torch.zeros(32, dtype=torch.long)
    with pytest.raises(TypeError, match="floating point"):
        EncoderKernel.from_bert(bad, heads=4)
    bad = {k: v for k, v in state.items() if not k.endswith("layer.1.attention.self.value.bias")}
    with pytest.raises(ValueError, match="lacks"):
        EncoderKernel.from_bert(bad, heads=4)
    with pytest.raises(ValueError, match="not divisible"):
        EncoderKernel.from_bert(state, heads=5)
    with pytest.raises(ValueError, match="unique"):
        EncoderKernel.from_bert({"x": np.zeros(3)}, heads=1)
    kernel = EncoderKernel(Arch(1, 2, 8, 4))
    with pytest.raises(ValueError, match="unknown encoder layer tensor"):
        kernel._encoder.set_tensor(0, "nope", np.zeros(8, np.float32))
    with pytest.raises(IndexError, match="layer index 1"):
        kernel._encoder.set_tensor(1, TENSOR_NAMES[1], np.zeros(8, np.float32))


@pytest.fixture(scope="module")
def small_kernel() -> EncoderKernel:
    return EncoderKernel.random(Arch(1, 2, 8, 16), seed=0)


def test_bad_forward_input(small_kernel):
    k = small_kernel
    ok = np.zeros((2, 3, 8), np.float32)
    with pytest.raises(TypeError, match="hidden must have dtype float32, got float64"):
        k.forward(ok.astype(np.float64))
    with pytest.raises(TypeError, match="numpy array"):
        k.forward(ok.tolist())
    with pytest.raises(ValueError, match=r"hidden must have rank 3, got shape \(6, 8\)"):
        k.forward(ok.reshape(6, 8), np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        k.forward(np.zeros((2, 8, 3), np.float32).transpose(0, 2, 1))
    with pytest.raises(ValueError, match=r"shape \(batch, seq_len, 8\), got \(2, 3, 9\)"):
        k.forward(np.zeros((2, 3, 9), np.float32))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        k.forward(ok, np.ones((2, 4), np.float32))
    with pytest.raises(TypeError, match="mask must have dtype float32"):
        k.forward(ok, np.ones((2, 3), np.float16))
    with pytest.raises(ValueError, match="batch > 0"):
        k.forward(np.zeros((0, 3, 8), np.float32))
    with pytest.raises(ValueError, match="seq_len > 0"):
        k.forward(np.zeros((2, 0, 8), np.float32))
    for threads in (0, -1):
        with pytest.raises(ValueError, match=f"threads must be >= 1, got {threads}"):
            k.forward(ok, threads=threads)
    with pytest.raises(TypeError, match="threads must be an int"):
        k.forward(ok, threads=1.5)
    with pytest.raises(ValueError, match=r"threads must be in \[1, 256\]"):
        k._encoder.forward(ok, np.ones((2, 3), np.float32), 0)
    with pytest.raises(ValueError, match="layers must be positive"):
        EncoderKernel(Arch(0, 1, 8, 4))
    with pytest.raises(ValueError, match="layer_norm_eps"):
        EncoderKernel(Arch(1, 1, 8, 4), layer_norm_eps=0.0)
    with pytest.raises(ValueError, match="heads=3"):
        from bortfast import _core

        _core.Encoder(1, 3, 8, 4)


DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.bool_, np.complex64]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(0, 5), min_size=0, max_size=4),
    mask_shape=st.lists(st.integers(0, 5), min_size=0, max_size=3),
    dtype=st.sampled_from(DTYPES),
    mask_dtype=st.sampled_from(DTYPES),
    transpose=st.booleans(),
    threads=st.integers(-2, 4),
)
def test_boundary_fuzz(small_kernel, shape, mask_shape, dtype, mask_dtype, transpose, threads):
    """Random shapes/dtypes at the C++ boundary: a correct result or a ValueError/TypeError, never a crash."""
    hidden = np.ones(shape, dtype=dtype)
    if transpose and hidden.ndim >= 2:
        hidden = hidden.swapaxes(0, 1)
    mask = np.ones(mask_shape, dtype=mask_dtype)
    try:
        out = small_kernel._encoder.forward(hidden, mask, threads)
    except (ValueError, TypeError):
        return
    assert out.shape == hidden.shape and out.dtype == np.float32 and np.isfinite(out).all()


def _forward_in_child(queue) -> None:
    kernel = EncoderKernel.random(Arch(1, 2, 32, 64), seed=1)
    queue.put(kernel.forward(np.ones((2, 16, 32), np.float32), threads=2))


def test_thread_pool_survives_fork_and_growth():
    """The pool is reused across calls with different thread counts and in a fork()ed child."""
    import multiprocessing

    kernel = EncoderKernel.random(Arch(1, 2, 32, 64), seed=1)
    hidden = np.ones((2, 16, 32), np.float32)
    expected = kernel.forward(hidden, threads=1)
    for threads in (2, 3, 2, 4, 1, 4):
        np.testing.assert_allclose(kernel.forward(hidden, threads=threads), expected, atol=1e-5)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_forward_in_child, args=(queue,))
    child.start()
    out = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_allclose(out, expected, atol=1e-5)
