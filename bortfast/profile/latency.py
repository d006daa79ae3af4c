"""Measured CPU latency of encoder architectures: the inference-cost proxy i-hat of the Bort paper
(de Wynter & Perry 2020, §2 and §3: wall-clock latency on CPU of each candidate xi).

Each architecture runs through the fused C++ encoder kernel (:mod:`bortfast.profile.kernel`) with random weights --
allocated once per architecture, no torch model is built -- on a random (B, L, H) input. Results are cached on disk
as JSON keyed by (architecture, batch, seq_len, threads, repeats, warm-up, CPU model, kernel version), written
atomically after every architecture, so an interrupted profile resumes where it stopped and a cache never mixes
machines, measurement settings or kernel builds.

The kernel version is ``bortfast.__version__`` plus ``_core.kernel_hash``: a SHA-256 prefix of every csrc/ file and
the build settings, computed by CMakeLists.txt when _core is built, so editing the kernel (even without a version
bump) or building it with a sanitizer starts a fresh set of entries. Each update is a read-modify-write of the file
under an exclusive lock (``latency-cache.json.lock``, :func:`bortfast._base.io.file_lock`), so processes sharing one
cache directory lose none of each other's entries. A cache file in an older format (no ``"format": 2``) is refused
with an error rather than reused.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortfast import _core
from bortfast._base.checks import check_int, check_int_type, check_positive
from bortfast._base.io import file_lock, write_json
from bortfast._base.version import __version__
from bortfast.profile.kernel import EncoderKernel, _check_threads
from bortfast.space import Arch, PerLayerArch, SearchSpace

DEFAULT_REPEATS = 7  # timed forward passes per architecture (the median is reported)
DEFAULT_WARMUP = 1  # untimed passes first (page-faults the scratch buffers, warms caches and the thread pool)
CACHE_FILE = "latency-cache.json"
CACHE_FORMAT = 2  # 1: keys without repeats, warm-up and kernel version (bortfast <= 0.1.0 before the lock)


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock latency of one encoder forward pass, over ``repeats`` timed runs."""

    median_ms: float  # median over the timed runs: the i-hat value
    min_ms: float
    max_ms: float
    repeats: int  # timed runs
    batch: int  # B sequences per forward
    seq_len: int  # L tokens per sequence
    threads: int  # kernel threads


def cpu_model() -> str:
    """The CPU's model name (first 'model name' of /proc/cpuinfo; platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _check_positive(name: str, value: int) -> int:
    return check_positive(name, check_int_type(name, value))


def _check_non_negative(name: str, value: int) -> int:
    return check_int(name, check_int_type(name, value), 0, ">= 0")


def _time_kernel(kernel: EncoderKernel, batch: int, seq_len: int, threads: int, repeats: int,
                 warmup: int) -> LatencyStats:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((batch, seq_len, kernel.arch.hidden), dtype=np.float32)  # (B, L, H)
    mask = np.ones((batch, seq_len), dtype=np.float32)  # (B, L), no padding
    for _ in range(warmup):
        kernel.forward(hidden, mask, threads)
    times = np.empty(repeats)
    for r in range(repeats):
        start = time.perf_counter()
        kernel.forward(hidden, mask, threads)
        times[r] = (time.perf_counter() - start) * 1e3
    return LatencyStats(float(np.median(times)), float(times.min()), float(times.max()), repeats, batch, seq_len,
                        threads)


def measure_latency(arch: Arch | PerLayerArch, batch: int = 1, seq_len: int = 128, threads: int | None = None,
                    repeats: int = DEFAULT_REPEATS, warmup: int = DEFAULT_WARMUP, *, seed: int = 0) -> LatencyStats:
    """Latency of one encoder forward of ``arch`` on (batch, seq_len) tokens with the fused C++ kernel
    (random weights from ``seed``; ``threads`` defaults to the CPUs this process may use)."""
    if not isinstance(arch, (Arch, PerLayerArch)):
        raise TypeError(f"arch must be a bortfast.Arch or PerLayerArch, got {type(arch).__name__}")
    batch = _check_positive("batch", batch)
    seq_len = _check_positive("seq_len", seq_len)
    repeats = _check_positive("repeats", repeats)
    warmup = _check_non_negative("warmup", warmup)
    threads = _check_threads(threads)
    kernel = EncoderKernel.random(arch, seed=seed)
    return _time_kernel(kernel, batch, seq_len, threads, repeats, warmup)


def _as_archs(archs: Iterable[Arch] | SearchSpace | np.ndarray) -> list[Arch]:
    if isinstance(archs, np.ndarray):
        if archs.ndim != 2 or archs.shape[1] != 4:
            raise ValueError(f"archs array must have shape (n, 4), got {archs.shape}")
        return [Arch(*map(int, row)) for row in archs]
    out = list(archs)
    for a in out:
        if not isinstance(a, Arch):
            raise TypeError(f"archs must contain bortfast.Arch values, got {type(a).__name__}")
    return out


def kernel_version() -> str:
    """``<bortfast version>+<_core.kernel_hash>``: changes with the package version and with any csrc/ change."""
    return f"{__version__}+{_core.kernel_hash}"


def cache_key(arch: Arch, batch: int, seq_len: int, threads: int, cpu: str, *, repeats: int, warmup: int,
              kernel: str) -> str:
    """The cache entry of one measurement: everything that changes the number measured."""
    return (f"{arch.layers},{arch.heads},{arch.hidden},{arch.intermediate}|B={batch}|L={seq_len}|T={threads}"
            f"|R={repeats}|W={warmup}|{cpu}|kernel={kernel}")


def read_cache(path: Path, fmt: int = CACHE_FORMAT,
               detail: str = "keys with repeats, warm-up and kernel version") -> dict[str, dict]:
    """The ``entries`` of the JSON latency cache ``path`` in format ``fmt`` (``{}`` when there is no file); a file in
    another format, or not a cache, is refused with an error rather than reused."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"latency cache {path} is not valid JSON ({err}); delete it to re-measure") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise ValueError(f"latency cache {path} has no 'entries' mapping; delete it to re-measure")
    if data.get("format") != fmt:
        raise ValueError(f"latency cache {path} is format {data.get('format', 1)!r}, this bortfast reads format "
                         f"{fmt} ({detail}); delete it to re-measure or use another cache directory")
    return data["entries"]


def merge_cache(path: Path, entries: dict[str, dict], fmt: int = CACHE_FORMAT, **header: Any) -> None:
    """Add ``entries``: read the file, merge, replace it atomically -- all under the cache's lock, so concurrent
    writers (other processes profiling into the same directory) lose nothing."""
    with file_lock(path.with_name(path.name + ".lock")):
        merged = {**read_cache(path, fmt), **entries}
        write_json(path, {"format": fmt, **header, "entries": merged})


def profile_stats(archs: Iterable[Arch] | SearchSpace | np.ndarray, *, batch: int = 1, seq_len: int = 128,
                  threads: int | None = None, repeats: int = DEFAULT_REPEATS, warmup: int = DEFAULT_WARMUP,
                  cache_dir: str | Path | None = None, progress: bool = True) -> list[LatencyStats]:
    """:class:`LatencyStats` for every architecture, in order (see :func:`profile_space`)."""
    arch_list = _as_archs(archs)
    batch = _check_positive("batch", batch)
    seq_len = _check_positive("seq_len", seq_len)
    repeats = _check_positive("repeats", repeats)
    warmup = _check_non_negative("warmup", warmup)
    threads = _check_threads(threads)
    cpu, version = cpu_model(), kernel_version()

    def key(a: Arch) -> str:
        return cache_key(a, batch, seq_len, threads, cpu, repeats=repeats, warmup=warmup, kernel=version)

    cache_path = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    entries = read_cache(cache_path) if cache_path is not None else {}
    results: dict[Arch, LatencyStats] = {}
    for a in arch_list:
        hit = entries.get(key(a))
        if hit is not None:
            results[a] = LatencyStats(**hit)
    todo = list(dict.fromkeys(a for a in arch_list if a not in results))

    from tqdm.auto import tqdm

    bar = tqdm(todo, desc=f"latency B={batch} L={seq_len} T={threads}", unit="arch", disable=not progress)
    for a in bar:
        bar.set_postfix_str(str(a))
        kernel = EncoderKernel.random(a, seed=0)  # weights allocated once per architecture
        results[a] = _time_kernel(kernel, batch, seq_len, threads, repeats, warmup)
        del kernel
        if cache_path is not None:
            merge_cache(cache_path, {key(a): asdict(results[a])}, cpu=cpu)
    return [results[a] for a in arch_list]


def profile_space(archs: Iterable[Arch] | SearchSpace | np.ndarray, *, batch: int = 1, seq_len: int = 128,
                  threads: int | None = None, repeats: int = DEFAULT_REPEATS, warmup: int = DEFAULT_WARMUP,
                  cache_dir: str | Path | None = None, progress: bool = True) -> np.ndarray:
    """Median latency in ms (float64 array, one per architecture, same order) of the fused kernel for every
    architecture. With ``cache_dir``, measured values are reused across calls and processes (keyed by
    architecture, batch, seq_len, threads, repeats, warm-up, CPU model and kernel version) and saved after every
    architecture."""
    stats = profile_stats(archs, batch=batch, seq_len=seq_len, threads=threads, repeats=repeats, warmup=warmup,
                          cache_dir=cache_dir, progress=progress)
    return np.array([s.median_ms for s in stats], dtype=np.float64)
