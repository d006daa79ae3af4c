"""``bortfast space``: print a search space's architectures with their parameter counts and FLOPs."""

from __future__ import annotations

import argparse
import json
import sys

from bortfast.space import SearchSpace


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["bert-paper"], help="a published search space")
    src.add_argument("--below", metavar="CONFIG_DIR",
                     help="the space below a transformers model directory (its config.json)")
    parser.add_argument("--batch", type=int, default=1, help="batch size for the FLOP count (default 1)")
    parser.add_argument("--seq-len", type=int, default=128, help="sequence length for the FLOP count (default 128)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars or stage messages")
    parser.add_argument("--kind", choices=["encoder", "encoder+pooler", "masked-lm"], default="encoder+pooler",
                        help="which model's parameters to count (default encoder+pooler = BertModel)")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def run_cli(args: argparse.Namespace) -> int:
    if args.preset:
        space = SearchSpace.preset(args.preset)
    else:
        from transformers import AutoConfig

        space = SearchSpace.below(AutoConfig.from_pretrained(args.below, local_files_only=True))
    rows = space.table(batch=args.batch, seq_len=args.seq_len, kind=args.kind)
    if args.json:
        json.dump({"space": space.name, "batch": args.batch, "seq_len": args.seq_len, "kind": args.kind,
                   "archs": rows}, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'layers':>6} {'heads':>5} {'hidden':>6} {'inter':>6} {'params (M)':>11} {'GFLOPs':>9}")
    for r in rows:
        print(f"{r['layers']:>6} {r['heads']:>5} {r['hidden']:>6} {r['intermediate']:>6} "
              f"{r['params'] / 1e6:>11.2f} {r['flops'] / 1e9:>9.2f}")
    print(f"{len(rows)} architectures in space '{space.name}' (FLOPs at batch={args.batch}, "
          f"seq_len={args.seq_len})")
    return 0
