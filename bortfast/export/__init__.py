"""ONNX export of a BERT checkpoint (:mod:`.onnx`): ORT fusions, optional INT8, parity against torch, metadata;
:mod:`.precision` ships INT8 only where it is faster on this CPU and agrees with fp32."""

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
from bortfast.export.precision import PrecisionConfig, PrecisionReport, choose_precision

__all__ = ["DEFAULT_OPSET", "INPUT_NAMES", "META_PREFIX", "ExportReport", "check_fusions", "expected_fusions",
           "random_inputs", "to_onnx", "PrecisionConfig", "PrecisionReport", "choose_precision"]
