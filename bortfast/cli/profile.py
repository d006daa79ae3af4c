"""``bortfast profile``: measured encoder latency (the fused C++ kernel) over a search space, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field

from bortfast._base.io import write_json
from bortfast.profile.latency import DEFAULT_REPEATS, DEFAULT_WARMUP, cpu_model, kernel_version, profile_stats
from bortfast.space import Arch, SearchSpace


@dataclass
class ProfileOptions:
    """The options of ``bortfast profile`` besides the architectures and the output."""

    batch: int = field(default=1, metadata={"flag": "latency-batch", "aliases": ("batch",),
                                            "help": "sequences per timed forward pass"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence"})
    threads: int | None = field(default=None, metadata={
        "help": "the command's thread budget: the fused C++ kernel's threads, all this command runs (default: the "
                "CPUs available)"})
    repeats: int = field(default=DEFAULT_REPEATS, metadata={"help": "timed runs per architecture"})
    warmup: int = field(default=DEFAULT_WARMUP, metadata={"help": "untimed runs per architecture first"})
    cache_dir: str | None = field(default=None, metadata={"help": "reuse/save measurements in this directory "
                                                                  "(a JSON cache)"})
    progress: bool = field(default=True, metadata={"help": "no progress bar"})


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from bortfast.cli._args import add_dataclass_arguments

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["bert-paper"], help="a published search space")
    src.add_argument("--arch", action="append", metavar="D,A,H,I", help="one architecture (repeatable)")
    add_dataclass_arguments(parser, ProfileOptions)
    parser.add_argument("--out", default=None, help="write the results as JSON to this file (default: stdout)")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast import _core

    if args.preset:
        space_name, archs = args.preset, SearchSpace.preset(args.preset).archs()
    else:
        space_name, archs = "custom", [Arch.parse(text) for text in args.arch]
    start = time.perf_counter()
    stats = profile_stats(archs, batch=args.batch, seq_len=args.seq_len, threads=args.threads,
                          repeats=args.repeats, warmup=args.warmup, cache_dir=args.cache_dir,
                          progress=args.progress)
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
