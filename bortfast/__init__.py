"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

from bortfast.space import (
    Arch,
    SearchSpace,
    encoder_flops,
    param_counts,
)
from bortfast.tasks import compute_metrics, get_task, load_examples

__version__ = "0.1.0"

# Names whose modules import torch / transformers: loaded on first use so `import bortfast` stays cheap.
_LAZY = {
    "FinetuneConfig": "bortfast.finetune", "finetune": "bortfast.finetune", "load_finetuned": "bortfast.finetune",
    "AgoraConfig": "bortfast.agora", "agora": "bortfast.agora",
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
    "compute_metrics",
    "get_task",
    "load_examples",
    "FinetuneConfig",
    "finetune",
    "load_finetuned",
    "AgoraConfig",
    "agora",
    "__version__",
]
