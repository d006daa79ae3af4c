"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

# Loads the OpenBLAS library that bortfast._core links, so it must come before anything imports _core.
from bortfast import _openblas  # noqa: F401  # isort: skip
from bortfast.kernel import EncoderKernel
from bortfast.knapsack import layer_frontier
from bortfast.profile import LatencyStats, measure_latency, profile_space
from bortfast.search import SearchConfig, SearchResult, extract, run_algorithm1
from bortfast.selection import approx_pareto_front, interval_pivots, pareto_front, w_coefficients
from bortfast.space import (
    Arch,
    SearchSpace,
    encoder_flops,
    param_counts,
)
from bortfast.tasks import compute_metrics, get_task, load_examples

__version__ = "0.1.0"

# Heavy names (torch / transformers / onnxruntime behind them) load on first use so `import bortfast` stays light.
# The function `distill` is not re-exported: the name `bortfast.distill` is the submodule.
# Likewise `finetune` / `agora` are submodules (from bortfast.finetune import finetune).
_LAZY = {
    "DistillConfig": "bortfast.distill",
    "build_student": "bortfast.distill",
    "load_corpus": "bortfast.distill",
    "load_teacher": "bortfast.distill",
    "short_train_error": "bortfast.distill",
    "to_onnx": "bortfast.export",
    "ExportReport": "bortfast.export",
    "Encoder": "bortfast.runtime",
    "Classifier": "bortfast.runtime",
    "run_speedup": "bortfast.bench",
    "FinetuneConfig": "bortfast.finetune_config",
    "AgoraConfig": "bortfast.finetune_config",
    "load_finetuned": "bortfast.finetune",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bortfast' has no attribute {name!r}")


__all__ = [
    "Arch",
    "DistillConfig",
    "EncoderKernel",
    "layer_frontier",
    "LatencyStats",
    "measure_latency",
    "profile_space",
    "SearchSpace",
    "build_student",
    "encoder_flops",
    "load_corpus",
    "load_teacher",
    "param_counts",
    "short_train_error",
    "compute_metrics",
    "get_task",
    "load_examples",
    "FinetuneConfig",
    "load_finetuned",
    "AgoraConfig",
    "__version__",
    "SearchConfig",
    "SearchResult",
    "extract",
    "run_algorithm1",
    "approx_pareto_front",
    "interval_pivots",
    "pareto_front",
    "w_coefficients",
    "to_onnx",
    "ExportReport",
    "Encoder",
    "Classifier",
    "run_speedup",
]
