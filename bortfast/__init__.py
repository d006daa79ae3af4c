"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

from bortfast.space import (
    Arch,
    SearchSpace,
    encoder_flops,
    param_counts,
)

__version__ = "0.1.0"

# Heavy names (torch / onnxruntime behind them) load on first use, so `import bortfast` stays cheap.
_LAZY = {
    "to_onnx": "bortfast.export",
    "ExportReport": "bortfast.export",
    "Encoder": "bortfast.runtime",
    "Classifier": "bortfast.runtime",
    "run_speedup": "bortfast.bench",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bortfast' has no attribute {name!r}")


__all__ = [
    "Arch",
    "SearchSpace",
    "encoder_flops",
    "param_counts",
    "__version__",
    "to_onnx",
    "ExportReport",
    "Encoder",
    "Classifier",
    "run_speedup",
]
