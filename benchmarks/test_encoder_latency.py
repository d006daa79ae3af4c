"""Encoder latency on CPU, 2 threads, L = 128: the bortfast kernel vs ONNX Runtime (BERT-fused graph) vs torch
eager, same random weights, for Bort <4,8,1024,768>, BERT-base and BERT-large at B = 1 and 8 (DESIGN.md §5).
Also prints the kernel's achieved GFLOP/s against the FP32 peak derived from /proc/cpuinfo.

Run (the machine is shared -- take the lock; BORTFAST_BENCH_FULL=1 adds BERT-large at B=8):
    flock /tmp/bortfast-bench.lock pytest benchmarks/test_encoder_latency.py --benchmark-only -s
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from encoder_engines import SEQ_LEN, SHAPES, THREADS, Engines, fp32_peak_gflops

ENGINES = ("torch", "ort", "kernel")
# BERT-large at B=8 costs ~0.6 TFLOP per forward (minutes for three engines on 2 shared cores): opt-in.
FULL = os.environ.get("BORTFAST_BENCH_FULL") == "1"
CASES = [(name, batch, engine) for name in SHAPES for batch in (1, 8) for engine in ENGINES
         if FULL or (name, batch) != ("bert-large", 8)]
_medians: dict[tuple[str, int, str], float] = {}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    built: dict[str, Engines] = {}

    def get(name: str) -> Engines:
        if name not in built:
            built.clear()  # one shape's three copies of the weights at a time
            built[name] = Engines(SHAPES[name], tmp_path_factory.mktemp(name))
        return built[name]

    return get


@pytest.mark.parametrize("name,batch,engine", CASES, ids=[f"{n}-B{b}-{e}" for n, b, e in CASES])
def test_encoder_latency(benchmark, engines, name, batch, engine):
    benchmark.group = f"encoder {name} B={batch} L={SEQ_LEN} threads={THREADS}"
    eng = engines(name)
    hidden, mask = eng.inputs(batch)
    run = getattr(eng, f"run_{engine}")
    flops = eng.arch.flops(batch, SEQ_LEN)
    rounds = int(np.clip(4e11 / flops, 3, 20))  # ~a few seconds per engine, at least 3 timed runs
    out = benchmark.pedantic(run, args=(hidden, mask), rounds=rounds, iterations=1, warmup_rounds=1)
    assert out.shape == hidden.shape
    if engine != "kernel":
        np.testing.assert_allclose(out, eng.run_kernel(hidden, mask), atol=2e-3, rtol=0)
    if not benchmark.stats:
        return  # --benchmark-disable: a smoke test of the answers only
    _medians[(name, batch, engine)] = benchmark.stats.stats.median
    if engine == "kernel" and all((name, batch, e) in _medians for e in ENGINES):
        t = {e: _medians[(name, batch, e)] for e in ENGINES}
        mhz, peak = fp32_peak_gflops(THREADS)
        gflops = flops / t["kernel"] / 1e9
        print(f"\n{name} {eng.arch} B={batch} L={SEQ_LEN} threads={THREADS}: kernel {t['kernel'] * 1e3:.1f} ms, "
              f"ORT {t['ort'] * 1e3:.1f} ms, torch {t['torch'] * 1e3:.1f} ms -> kernel is "
              f"{t['ort'] / t['kernel']:.2f}x ORT, {t['torch'] / t['kernel']:.2f}x torch eager; "
              f"{gflops:.0f} GFLOP/s = {100 * gflops / peak:.0f}% of FP32 peak {peak:.0f} GFLOP/s "
              f"({mhz:.0f} MHz x 32 flop/cycle x {THREADS} cores)")
