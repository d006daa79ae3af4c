"""``bortfast bench``: CPU speed-up of the deployed student (ONNX Runtime) over PyTorch BERT-base/large.

The options are :class:`bortfast.apps.bench.SpeedupConfig`'s fields (built by :mod:`bortfast.cli._args`), plus
the sentence file the end-to-end part reads.
"""

from __future__ import annotations

import argparse

from bortfast.apps.bench import SpeedupConfig, format_summary, read_sentences_tsv, run_speedup

# SpeedupConfig fields that are no option of the command (the Python API sets them).
_NOT_OPTIONS = ("warmup", "e2e_batch_size", "seed")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from bortfast.cli._args import add_dataclass_arguments

    add_dataclass_arguments(parser, SpeedupConfig, skip=_NOT_OPTIONS)
    parser.add_argument("--sentences-tsv", help="TSV with a 'sentence' column (e.g. SST-2 dev.tsv) for the "
                                                "end-to-end timing (default: no end-to-end part)")
    parser.add_argument("--max-sentences", type=int, help="use only the first N sentences of --sentences-tsv")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast.cli._args import from_args

    sentences = read_sentences_tsv(args.sentences_tsv, args.max_sentences) if args.sentences_tsv else None
    result = run_speedup(from_args(SpeedupConfig, args, skip=_NOT_OPTIONS, sentences=sentences))
    print(format_summary(result))
    return 0
