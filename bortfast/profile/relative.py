"""î(ξ) as a ratio to the teacher T's latency, both timed in the same alternating rounds (issue 31).

An absolute latency measured at one moment and compared with T's measured at another is not stable on shared or
frequency-scaling hosts: the speed of these machines drifts up to 2x within an hour, while ratios taken within one
interleaved run hold to a few per cent (``docs/results/speed.md``). So ξ are timed in blocks between two timings
of T (T, ξ1 … ξk, T; the order of the block alternating round to round), each ξ's ratio in a round is its time
over the mean of the T times around it, and î(ξ) is the median of those ratios over the rounds.
W only needs ratios ((i(T) − i(ξ)) / i(T) = 1 − ratio), and so does a speed-up budget; a millisecond figure is the
ratio times T's median in the same rounds, and says when and where it was measured.

Ratios are cached on disk (``relative-latency-cache.json``) keyed by ξ, T, the shape, threads, rounds, CPU model and
kernel version, with T's milliseconds and the date beside each entry, written after every ξ under the cache's lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bortfast._base.checks import check_int
from bortfast.profile.kernel import EncoderKernel, _check_threads
from bortfast.profile.latency import cpu_model, kernel_version, merge_cache, read_cache
from bortfast.space import Arch, PerLayerArch

CACHE_FILE = "relative-latency-cache.json"
CACHE_FORMAT = 1
DEFAULT_ROUNDS = 7  # rounds per block; the median of a ξ's per-round ratios is its î
DEFAULT_BLOCK = 16  # architectures timed between two timings of T (T's share of the profiling time: 1 / 8)


@dataclass(frozen=True)
class RelativeLatency:
    """One ξ timed against the reference T in alternating rounds."""

    ratio: float  # median over the rounds of t(ξ) / t(T): î(ξ) in units of T's latency
    ms: float  # ξ's median latency in those rounds (ms)
    reference_ms: float  # T's median latency in the same rounds (ms)
    rounds: int  # rounds timed
    measured: str  # when (UTC), so an absolute figure says when it was taken


def _arch_id(arch: Arch | PerLayerArch) -> str:
    return arch.spec if isinstance(arch, PerLayerArch) else ",".join(map(str, arch.tuple))


def relative_key(arch: Arch | PerLayerArch, reference: Arch | PerLayerArch, batch: int, seq_len: int, threads: int,
                 rounds: int, cpu: str) -> str:
    """The cache entry of one ratio: everything that changes the number measured."""
    return (f"{_arch_id(arch)}|ref={_arch_id(reference)}|B={batch}|L={seq_len}|T={threads}|R={rounds}|{cpu}"
            f"|kernel={kernel_version()}")


def _timed(kernel: EncoderKernel, hidden: np.ndarray, mask: np.ndarray, threads: int) -> float:
    start = time.perf_counter()
    kernel.forward(hidden, mask, threads)
    return (time.perf_counter() - start) * 1e3


def _inputs(arch: Arch | PerLayerArch, batch: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.random.default_rng(0).standard_normal((batch, seq_len, arch.hidden), dtype=np.float32)  # (B, L, H)
    return hidden, np.ones((batch, seq_len), dtype=np.float32)  # (B, L), no padding


def block_latency(kernels: Sequence[EncoderKernel], reference: EncoderKernel, *, batch: int, seq_len: int,
                  threads: int, rounds: int = DEFAULT_ROUNDS, warmup: int = 1) -> list[RelativeLatency]:
    """Time a block of kernels against ``reference`` (T): each round times T, every kernel of the block (in
    alternating order from round to round), then T again; a kernel's ratio in a round is its time over the mean of
    the two T times around it (milliseconds apart: host drift cancels), and its î is the median over rounds."""
    inputs = [_inputs(k.arch, batch, seq_len) for k in kernels]
    ref_in = _inputs(reference.arch, batch, seq_len)
    for _ in range(warmup):
        reference.forward(*ref_in, threads)
        for k, x in zip(kernels, inputs):
            k.forward(*x, threads)
    t = np.empty((rounds, len(kernels)))
    t_ref = np.empty((rounds, 2))
    for r in range(rounds):
        t_ref[r, 0] = _timed(reference, *ref_in, threads)
        order = range(len(kernels)) if r % 2 == 0 else reversed(range(len(kernels)))
        for j in order:
            t[r, j] = _timed(kernels[j], *inputs[j], threads)
        t_ref[r, 1] = _timed(reference, *ref_in, threads)
    ratios = t / t_ref.mean(axis=1, keepdims=True)  # (rounds, kernels)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    ref_ms = float(np.median(t_ref))
    return [RelativeLatency(float(np.median(ratios[:, j])), float(np.median(t[:, j])), ref_ms, rounds, when)
            for j in range(len(kernels))]


def relative_profile(archs: Sequence[Arch | PerLayerArch], reference: Arch | PerLayerArch, *, batch: int = 1,
                     seq_len: int = 128, threads: int | None = None, rounds: int = DEFAULT_ROUNDS,
                     block: int = DEFAULT_BLOCK, cache_dir: str | Path | None = None,
                     progress: bool = False) -> list[RelativeLatency]:
    """:class:`RelativeLatency` of every architecture against ``reference`` (T), in order, timed ``block`` at a
    time (:func:`block_latency`). The reference's kernel is built once, each ξ's weights once. With ``cache_dir``,
    ratios are reused across calls and processes and saved after every block."""
    for a in (*archs, reference):
        if not isinstance(a, (Arch, PerLayerArch)):
            raise TypeError(f"archs and reference must be bortfast.Arch or PerLayerArch, got {type(a).__name__}")
    batch, seq_len = check_int("batch", batch, 1), check_int("seq_len", seq_len, 1)
    rounds, block, threads = check_int("rounds", rounds, 1), check_int("block", block, 1), _check_threads(threads)
    cpu = cpu_model()
    path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    entries = read_cache(path, CACHE_FORMAT, "ratios to a reference") if path is not None else {}
    keys = [relative_key(a, reference, batch, seq_len, threads, rounds, cpu) for a in archs]
    results = {k: RelativeLatency(**entries[k]) for k in keys if k in entries}
    todo = [(a, k) for a, k in dict(zip(archs, keys)).items() if k not in results]
    if todo:
        from tqdm.auto import tqdm

        ref_kernel = EncoderKernel.random(reference, seed=1)
        bar = tqdm(total=len(todo), desc=f"î / î(T) B={batch} L={seq_len} T={threads}", unit="arch",
                   disable=not progress)
        for start in range(0, len(todo), block):
            chunk = todo[start:start + block]
            kernels = [EncoderKernel.random(a, seed=0) for a, _ in chunk]  # weights allocated once per ξ
            timed = block_latency(kernels, ref_kernel, batch=batch, seq_len=seq_len, threads=threads, rounds=rounds)
            for (_, k), value in zip(chunk, timed):
                results[k] = value
            if path is not None:
                merge_cache(path, {k: asdict(results[k]) for _, k in chunk}, CACHE_FORMAT)
            bar.update(len(chunk))
        bar.close()
    return [results[k] for k in keys]
