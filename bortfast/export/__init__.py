"""ONNX export of a BERT checkpoint (:mod:`.onnx`): ORT fusions, optional INT8, parity against torch, metadata."""

from bortfast.export.onnx import (
    DEFAULT_OPSET,
    INPUT_NAMES,
    META_PREFIX,
    ExportReport,
    check_fusions,
    expected_fusions,
    random_inputs,
    to_onnx,
)

__all__ = ["DEFAULT_OPSET", "INPUT_NAMES", "META_PREFIX", "ExportReport", "check_fusions", "expected_fusions",
           "random_inputs", "to_onnx"]
