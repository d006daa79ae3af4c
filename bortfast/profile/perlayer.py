"""Per-layer latency table: the fused kernel's î for architectures whose layers differ in width (DESIGN.md §1,
"The dynamic programme": per-layer latency as the knapsack's additive cost).

Each option (``heads`` heads of ``head_dim`` dims, ``intermediate`` FFN neurons, at hidden size H) is timed as a
one-layer encoder through the fused C++ kernel (:class:`~bortfast.profile.kernel.EncoderKernel`, random weights);
an architecture's predicted î is the sum of its layers' entries (:func:`predict_latency`). How well the sum
predicts the whole stack is measured by ``benchmarks/per_layer_latency.py``.
"""

from __future__ import annotations

import numpy as np

from bortfast.profile.kernel import EncoderKernel, _check_threads
from bortfast.profile.latency import DEFAULT_REPEATS, DEFAULT_WARMUP, _check_non_negative, _check_positive, _time_kernel
from bortfast.space import PerLayerArch

__all__ = ["layer_latency_table", "predict_latency"]


def layer_latency_table(hidden: int, head_dim: int, heads: np.ndarray, intermediate: np.ndarray, *,
                        batch: int = 1, seq_len: int = 128, threads: int | None = None,
                        repeats: int = DEFAULT_REPEATS, warmup: int = DEFAULT_WARMUP,
                        progress: bool = False) -> np.ndarray:
    """float64 ms, one per option: the median latency of one encoder layer with ``heads[k]`` heads and
    ``intermediate[k]`` neurons (an option with 0 heads and 0 neurons is a dropped layer: 0 ms)."""
    from tqdm.auto import tqdm

    heads, intermediate = np.asarray(heads, dtype=np.int64), np.asarray(intermediate, dtype=np.int64)
    if heads.shape != intermediate.shape or heads.ndim != 1:
        raise ValueError(f"heads and intermediate must be 1-D and of one length, got shapes {heads.shape} and "
                         f"{intermediate.shape}")
    batch, seq_len = _check_positive("batch", batch), _check_positive("seq_len", seq_len)
    repeats, warmup = _check_positive("repeats", repeats), _check_non_negative("warmup", warmup)
    threads = _check_threads(threads)
    out = np.zeros(len(heads))
    cache: dict[tuple[int, int], float] = {}
    for k in tqdm(range(len(heads)), desc="layer latency", disable=not progress, leave=False):
        a, i = int(heads[k]), int(intermediate[k])
        if a == 0 and i == 0:
            continue
        if (a, i) not in cache:
            kernel = EncoderKernel.random(PerLayerArch(hidden, head_dim, (a,), (i,)), seed=0)
            cache[a, i] = _time_kernel(kernel, batch, seq_len, threads, repeats, warmup).median_ms
        out[k] = cache[a, i]
    return out


def predict_latency(arch: PerLayerArch, table: dict[tuple[int, int], float]) -> float:
    """The sum of ``arch``'s layers' entries in ``table`` ((heads, intermediate) → ms); KeyError names a missing
    layer shape."""
    total = 0.0
    for layer, key in enumerate(zip(arch.heads, arch.intermediate)):
        if key not in table:
            raise KeyError(f"layer {layer} of {arch} (heads, intermediate) = {key} is not in the latency table")
        total += table[key]
    return total
