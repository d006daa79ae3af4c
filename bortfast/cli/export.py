"""``bortfast export``: a BERT checkpoint to ONNX (fused for ONNX Runtime, optional INT8), with its report."""

from __future__ import annotations

import argparse
import json

from bortfast.export.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, to_onnx


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="transformers BERT checkpoint directory")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--int8", action="store_true", help="dynamic INT8 quantisation of the weights")
    parser.add_argument("--no-optimize", action="store_true", help="skip ONNX Runtime's transformer fusions")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET})")
    parser.add_argument("--no-parity", action="store_true", help="skip the numerical check against torch")
    parser.add_argument("--report", help="also write the export report as JSON here")


def run_cli(args: argparse.Namespace) -> int:
    from bortfast._base.io import to_jsonable, write_json

    report = to_onnx(args.model, args.out, optimize=not args.no_optimize, quantize="int8" if args.int8 else None,
                     opset=args.opset, check_parity=not args.no_parity)
    if args.report:
        write_json(args.report, report)
    print(json.dumps(to_jsonable(report), indent=2))
    return 0
