"""Stress the encoder kernel's thread pool: many forwards with varying batch/sequence sizes and thread counts.

The pool clamps its threads to the number of tasks of each parallel region, so within one forward pass the
number of participating workers changes from region to region (attention has B*A tasks, the GEMMs a few column
or row blocks); more threads than cores makes workers late. Every result is compared with a single-thread
forward of the same input (the same task split gives bit-identical output, another split agrees to float
rounding). `bash .ci/tsan` runs this file under ThreadSanitizer (issue 16; docs/reliability.md).
"""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from bortfast import Arch
from bortfast.profile.kernel import EncoderKernel

# Under TSan every access is instrumented (5-15x slower): .ci/tsan sets a smaller round count.
ROUNDS = int(os.environ.get("BORTFAST_STRESS_ROUNDS", "25"))
ARCHS = [Arch(2, 2, 32, 64), Arch(1, 4, 64, 48), Arch(3, 1, 16, 40)]


def inputs(rng: np.random.Generator, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    batch, seq_len = int(rng.integers(1, 5)), int(rng.integers(1, 24))
    x = rng.standard_normal((batch, seq_len, hidden)).astype(np.float32)
    lengths = rng.integers(1, seq_len + 1, batch)
    mask = (np.arange(seq_len)[None, :] < lengths[:, None]).astype(np.float32)
    return x, mask


def test_many_forwards_with_varying_sizes_and_threads_match_single_thread():
    rng = np.random.default_rng(0)
    kernels = [EncoderKernel.random(arch, seed=k) for k, arch in enumerate(ARCHS)]
    for _ in range(ROUNDS):
        kernel = kernels[int(rng.integers(len(kernels)))]
        x, mask = inputs(rng, kernel.arch.hidden)
        expected = kernel.forward(x, mask, threads=1)
        for threads in rng.permutation([2, 3, 5, 8]):
            out = kernel.forward(x, mask, threads=int(threads))
            # A different task split changes the GEMM blocking, so only float rounding may differ.
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
            # The same split twice must agree bit for bit: a task run twice or not at all would not.
            np.testing.assert_array_equal(kernel.forward(x, mask, threads=int(threads)), out)


@pytest.mark.parametrize("callers", [2, 3])
def test_concurrent_callers_on_separate_kernels(callers):
    """Python threads (GIL released in forward) share the one pool: each must get its own answer."""
    rng = np.random.default_rng(callers)
    kernels = [EncoderKernel.random(ARCHS[k % len(ARCHS)], seed=10 + k) for k in range(callers)]
    cases = []
    for kernel in kernels:
        x, mask = inputs(rng, kernel.arch.hidden)
        cases.append((kernel, x, mask, kernel.forward(x, mask, threads=1)))
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        kernel, x, mask, expected = cases[index]
        try:
            for r in range(max(ROUNDS // 3, 4)):
                out = kernel.forward(x, mask, threads=2 + (r + index) % 4)
                np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a forward did not return (deadlock?)"
    if errors:
        raise errors[0]


def test_one_kernel_shared_by_threads_is_serialised():
    """Concurrent forwards on one Encoder are serialised by its own mutex (shared scratch buffers)."""
    kernel = EncoderKernel.random(ARCHS[0], seed=3)
    rng = np.random.default_rng(3)
    cases = [inputs(rng, kernel.arch.hidden) for _ in range(3)]
    expected = [kernel.forward(x, m, threads=1) for x, m in cases]
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        x, m = cases[index]
        try:
            for r in range(max(ROUNDS // 4, 3)):
                np.testing.assert_allclose(kernel.forward(x, m, threads=1 + (r % 3)), expected[index],
                                           rtol=1e-5, atol=1e-5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    if errors:
        raise errors[0]
