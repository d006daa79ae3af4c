"""``bortfast search``: Algorithm 1 of the Bort paper (§2) from the command line.

Writes ``search.json``, ``pareto.png`` and the resumable ``journal.jsonl`` into ``--out`` and prints the top-10
candidates by W. Re-running the same command after an interruption skips the finished trainings. Under
``torchrun --nproc_per_node=N`` the trainings are split across the N processes (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bortfast.search import SearchConfig


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    d = SearchConfig()
    parser.add_argument("--teacher", required=True, metavar="DIR_OR_HUB_ID",
                        help="the teacher T: a transformers model directory or a hub id")
    parser.add_argument("--corpus", required=True, nargs="+", metavar="PATH",
                        help="text files / directories of .txt files / hf:DATASET[:CONFIG][:SPLIT] names")
    parser.add_argument("--space", default="below-teacher", choices=["below-teacher", "bert-paper"],
                        help="search space Xi (default below-teacher: fractions of the teacher's sizes)")
    parser.add_argument("--eps", type=int, default=d.eps, help=f"interval size: one pivot every EPS architectures "
                        f"in parameter order, 1 = exhaustive (default {d.eps})")
    parser.add_argument("--steps", type=int, default=d.steps,
                        help=f"optimiser steps per short training (default {d.steps})")
    parser.add_argument("--lr", type=float, nargs="+", default=[t["lr"] for t in d.thetas],
                        help="learning rates; each is one hyperparameter set theta (default %(default)s)")
    parser.add_argument("--latency", choices=["kernel", "flops"], default=d.latency,
                        help="inference-cost proxy: fused C++ kernel latency or FLOPs (default %(default)s)")
    parser.add_argument("--batch", type=int, default=d.batch, help="batch size B for the latency/FLOPs (default 1)")
    parser.add_argument("--seq-len", type=int, default=d.seq_len,
                        help=f"sequence length L for latency/FLOPs and the training blocks (default {d.seq_len})")
    parser.add_argument("--train-batch-size", type=int, default=d.train_batch_size,
                        help=f"sequences per short-training step (default {d.train_batch_size})")
    parser.add_argument("--heldout-batch-size", type=int, default=d.heldout_batch_size,
                        help=f"held-out sequences the error is measured on (default {d.heldout_batch_size})")
    parser.add_argument("--max-blocks", type=int, default=None, help="use only this many corpus blocks")
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of every student and of the data split")
    parser.add_argument("--threads", type=int, default=None, help="threads for the latency kernel")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads for the short trainings (results are bit-identical only "
                             "for a fixed thread count)")
    parser.add_argument("--init", choices=["inherit", "random"], default=d.init,
                        help="short trainings start from the student cut out of the teacher (inherit, default) "
                             "or from random weights (random: the paper's setting)")
    parser.add_argument("--layers", choices=["importance", "even", "first"], default=d.layers,
                        help="teacher layers an inherited student keeps (default %(default)s)")
    parser.add_argument("--per-layer", action="store_true",
                        help="search per-layer widths: the knapsack DP proposes the frontier of per-layer head "
                             "counts and FFN widths (under --max-latency-ms with --latency flops, or "
                             "--min-speedup by FLOPs), and Algorithm 1 runs on it (--space is then unused)")
    parser.add_argument("--per-layer-hidden", type=int, nargs="+", default=[],
                        help="hidden sizes of the per-layer space (default: the teacher's, 3/4 and 1/2 of it)")
    parser.add_argument("--per-layer-points", type=int, default=d.per_layer_points,
                        help=f"frontier points kept per hidden size (default {d.per_layer_points})")
    add_choice_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an existing journal and result in --out instead of resuming")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_choice_arguments(parser: argparse.ArgumentParser) -> None:
    """How ξ* is chosen: W (the paper's default) unless the user states a budget or a floor."""
    parser.add_argument("--max-latency-ms", type=float, default=None, dest="max_latency",
                        help="latency budget on î (ms with --latency kernel, FLOPs with flops): xi* = the lowest "
                             "error within it")
    parser.add_argument("--min-speedup", type=float, default=None,
                        help="xi* = the lowest error among architectures at least this many times faster than "
                             "the teacher (by î)")
    parser.add_argument("--max-error", type=float, default=None,
                        help="quality floor as a ceiling on the error ê: xi* = the fastest within it")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast._base import dist
    from bortfast._base.state import torch_threads
    from bortfast.apps.extract import extract
    from bortfast.search import format_top

    config = SearchConfig(
        eps=args.eps, steps=args.steps, thetas=tuple({"lr": lr} for lr in args.lr), latency=args.latency,
        batch=args.batch, seq_len=args.seq_len, train_batch_size=args.train_batch_size,
        heldout_batch_size=args.heldout_batch_size, seed=args.seed, threads=args.threads,
        max_blocks=args.max_blocks, overwrite=args.overwrite, progress=not args.no_progress, init=args.init,
        layers=args.layers, max_latency=args.max_latency, min_speedup=args.min_speedup, max_error=args.max_error,
        per_layer=args.per_layer, per_layer_hidden=tuple(args.per_layer_hidden),
        per_layer_points=args.per_layer_points,
    )
    if args.torch_threads is not None and args.torch_threads < 1:
        raise ValueError(f"--torch-threads must be >= 1, got {args.torch_threads}")
    with torch_threads(args.torch_threads), dist.process_group():
        result = extract(args.teacher, args.corpus, args.space, out_dir=args.out, config=config)
        rank, _ = dist.rank_world()
    if rank == 0:
        out = Path(args.out)
        print(format_top(result, 10))
        print(f"\nxi* = {result.best_arch}  theta* = {result.best_theta}  W = {result.best_w:.6g}  "
              f"({result.trainings} short trainings over {len(result.candidates)} architectures; chosen by "
              f"{(result.selection or {}).get('rule', 'W')})")
        if result.error_param_spearman is not None:
            print(f"Spearman(error, params) over the trained pivots = {result.error_param_spearman:.3f}")
        print(f"wrote {out / 'search.json'} and {out / 'pareto.png'}")
    return 0
