"""``bortfast export``: a BERT checkpoint to ONNX (fused for ONNX Runtime, optional INT8), with its report.
``--precision auto`` exports both, times them on this CPU and ships INT8 only when it is faster and agrees."""

from __future__ import annotations

import argparse
import json

from bortfast.export.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, to_onnx

# PrecisionConfig fields that are no option of the command (the Python API sets them).
_NOT_OPTIONS = ("batch", "sample_size", "spinning", "seed", "timing")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    from bortfast.cli._args import add_dataclass_arguments
    from bortfast.export.precision import PrecisionConfig

    parser.add_argument("--model", required=True, help="transformers BERT checkpoint directory")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--precision", choices=("fp32", "int8", "auto"), default=None,
                        help="fp32 (default), int8 (dynamic INT8 weights), or auto: time both on this CPU and ship "
                             "INT8 only when it is faster and agrees with fp32 within --min-agreement")
    parser.add_argument("--int8", action="store_true", help="same as --precision int8")
    parser.add_argument("--encoder-only", action="store_true",
                        help="export the encoder alone (BertModel, output last_hidden_state) of any BERT checkpoint, "
                             "e.g. a masked-LM student without its pretraining head")
    parser.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's transformer fusions")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET}); default {DEFAULT_OPSET}")
    parser.add_argument("--no-parity", action="store_true", help="skip the numerical check against torch")
    parser.add_argument("--report", help="also write the export report as JSON to this file")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bars or stage messages")
    auto = parser.add_argument_group("--precision auto")
    add_dataclass_arguments(auto, PrecisionConfig, skip=_NOT_OPTIONS)
    auto.add_argument("--sample", help="text file, one input per line (first 256 used), for the agreement check "
                                       "(default: random token ids)")


def _precision(args: argparse.Namespace) -> str:
    if args.int8 and args.precision not in (None, "int8"):
        raise ValueError(f"--int8 contradicts --precision {args.precision}")
    return "int8" if args.int8 else (args.precision or "fp32")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast._base.io import to_jsonable, write_json

    precision = _precision(args)
    common = {"optimize": not args.no_optimize, "opset": args.opset, "check_parity": not args.no_parity,
              "encoder_only": args.encoder_only}
    if precision == "auto":
        from pathlib import Path

        from bortfast.cli._args import from_args
        from bortfast.export.precision import PrecisionConfig, choose_precision

        config = from_args(PrecisionConfig, args, skip=_NOT_OPTIONS)
        texts = None
        if args.sample:
            texts = [t for t in Path(args.sample).read_text(encoding="utf-8").splitlines() if t.strip()][:256]
            if not texts:
                raise ValueError(f"--sample {args.sample!r} has no non-empty lines")
        report = choose_precision(args.model, args.out, config=config, texts=texts, **common)
    else:
        report = to_onnx(args.model, args.out, quantize="int8" if precision == "int8" else None, **common)
    if args.report:
        write_json(args.report, report)
    print(json.dumps(to_jsonable(report), indent=2))
    return 0
