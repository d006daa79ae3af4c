"""``bortfast space``: print a search space's architectures with their parameter counts and FLOPs."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Literal

from bortfast.space import SearchSpace


@dataclass
class SpaceOptions:
    """The options of ``bortfast space`` besides the space itself."""

    batch: int = field(default=1, metadata={"flag": "latency-batch", "aliases": ("batch",),
                                            "help": "sequences per forward pass the FLOPs are counted for"})
    seq_len: int = field(default=128, metadata={"help": "tokens per sequence the FLOPs are counted for"})
    kind: Literal["encoder", "encoder+pooler", "masked-lm"] = field(default="encoder+pooler", metadata={
        "help": "which model's parameters to count (encoder+pooler = BertModel)"})
    json: bool = field(default=False, metadata={"help": "machine-readable JSON on stdout"})
    progress: bool = field(default=True, metadata={"help": "no progress bars or stage messages"})


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from bortfast.cli._args import add_dataclass_arguments

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", choices=["bert-paper"], help="a published search space")
    src.add_argument("--below", metavar="CONFIG_DIR",
                     help="the space below a transformers model directory (its config.json)")
    add_dataclass_arguments(parser, SpaceOptions)


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
