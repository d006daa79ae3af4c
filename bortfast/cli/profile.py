"""``bortfast profile``: measured encoder latency (the fused C++ kernel) over a search space, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time

from bortfast._base.io import write_json
from bortfast.profile.latency import DEFAULT_REPEATS, DEFAULT_WARMUP, cpu_model, kernel_version, profile_stats
from bortfast.space import Arch, SearchSpace


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["bert-paper"], help="a published search space")
    src.add_argument("--arch", action="append", metavar="D,A,H,I", help="one architecture (repeatable)")
    parser.add_argument("--batch", type=int, default=1, help="sequences per forward (default 1)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--threads", type=int, default=None, help="kernel threads (default: CPUs available)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"timed runs per architecture (default {DEFAULT_REPEATS})")
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                        help=f"untimed runs first (default {DEFAULT_WARMUP})")
    parser.add_argument("--cache-dir", default=None, help="reuse/save measurements here (JSON cache)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (default: stdout)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast import _core

    if args.preset:
        space_name, archs = args.preset, SearchSpace.preset(args.preset).archs()
    else:
        space_name, archs = "custom", [Arch.parse(text) for text in args.arch]
    start = time.perf_counter()
    stats = profile_stats(archs, batch=args.batch, seq_len=args.seq_len, threads=args.threads,
                          repeats=args.repeats, warmup=args.warmup, cache_dir=args.cache_dir,
                          progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    flops = [a.flops(args.batch, args.seq_len) for a in archs]
    result = {
        "space": space_name,
        "batch": args.batch,
        "seq_len": args.seq_len,
        "threads": stats[0].threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "cpu": cpu_model(),
        "blas": _core.blas_info(),
        "kernel": kernel_version(),
        "elapsed_s": elapsed,
        "archs": [
            {"layers": a.layers, "heads": a.heads, "hidden": a.hidden, "intermediate": a.intermediate,
             "median_ms": s.median_ms, "min_ms": s.min_ms, "max_ms": s.max_ms, "flops": f,
             "gflops_per_s": f / (s.median_ms * 1e6)}
            for a, s, f in zip(archs, stats, flops)
        ],
    }
    if args.out:
        write_json(args.out, result)
        print(f"{len(archs)} architectures profiled in {elapsed:.1f} s -> {args.out}", file=sys.stderr)
    else:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0
