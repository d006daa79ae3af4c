"""ONNX export of a BERT checkpoint (:mod:`.onnx`): ORT fusions, optional INT8, parity against torch, metadata;
:mod:`.precision` ships INT8 only where it is faster on this CPU and agrees with fp32; :mod:`.card` writes a model
directory's model card; :mod:`.st_onnx` places an encoder export where sentence-transformers' ONNX backend loads it."""

from bortfast.export.card import ModelCardInfo, QualityRow, SpeedRow, write_model_card
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
from bortfast.export.st_onnx import write_sentence_transformers_onnx

__all__ = ["DEFAULT_OPSET", "INPUT_NAMES", "META_PREFIX", "ExportReport", "check_fusions", "expected_fusions",
           "random_inputs", "to_onnx", "PrecisionConfig", "PrecisionReport", "choose_precision", "ModelCardInfo",
           "QualityRow", "SpeedRow", "write_model_card", "write_sentence_transformers_onnx"]
