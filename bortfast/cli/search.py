"""``bortfast search``: Algorithm 1 of the Bort paper (§2) from the command line.

Writes ``search.json``, ``pareto.png`` and the resumable ``journal.jsonl`` into ``--out`` and prints the top-10
candidates by W. Re-running the same command after an interruption skips the finished trainings. Under
``torchrun --nproc_per_node=N`` the trainings are split across the N processes (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bortfast.search import SearchConfig

# SearchConfig fields that are no option of the command (the Python API sets them); thetas comes from --lr.
_NOT_OPTIONS = ("thetas", "param_kind", "eps_small", "pareto_delta", "calibration_blocks", "exclude_file",
                "per_layer_delta")
_HELPS = {
    "threads": "the command's thread budget: torch intra-op threads of the short trainings and the latency "
               "kernel's threads (none given: torch's and the profiler's defaults; results are bit-identical only "
               "for a fixed count)",
    "progress": "no progress bar over the trainings",
    "overwrite": "discard an existing journal and result in --out instead of resuming",
    "max_blocks": "use only this many corpus blocks (of --seq-len tokens)",
}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from bortfast.cli._args import ListAction, add_dataclass_arguments

    parser.add_argument("--teacher", required=True, metavar="DIR_OR_HUB_ID",
                        help="the teacher T: a transformers model directory or a hub id")
    parser.add_argument("--corpus", required=True, nargs="+", metavar="PATH",
                        help="text files / directories of .txt files / hf:DATASET[:CONFIG][:SPLIT] names")
    parser.add_argument("--space", default="below-teacher", choices=["below-teacher", "bert-paper"],
                        help="search space Xi (below-teacher: fractions of the teacher's sizes); default %(default)s")
    parser.add_argument("--lr", action=ListAction, item=float, default=[t["lr"] for t in SearchConfig.thetas],
                        metavar="LR",
                        help="learning rates of the short trainings, each one hyperparameter set theta; default "
                             + " ".join(str(t["lr"]) for t in SearchConfig.thetas))
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_dataclass_arguments(parser, SearchConfig, skip=_NOT_OPTIONS, defaults={"progress": True}, helps=_HELPS)


def run_cli(args: argparse.Namespace) -> int:
    from bortfast._base import dist
    from bortfast._base.state import torch_threads
    from bortfast.apps.extract import extract
    from bortfast.cli._args import from_args
    from bortfast.search import format_top

    config = from_args(SearchConfig, args, skip=_NOT_OPTIONS, thetas=tuple({"lr": lr} for lr in args.lr))
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    with torch_threads(args.threads), dist.process_group():
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
