"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

# Loads the OpenBLAS library that bortfast._core links, so it must come before anything imports _core.
from bortfast import _openblas  # noqa: F401  # isort: skip
from bortfast._base.lazy import lazy_attributes  # noqa: E402
from bortfast._base.version import __version__  # noqa: E402
from bortfast.data.tasks import compute_metrics, get_task, load_examples
from bortfast.profile import EncoderKernel, LatencyStats, measure_latency, profile_space
from bortfast.search import SearchConfig, SearchResult, run_algorithm1
from bortfast.search.knapsack import layer_frontier
from bortfast.search.selection import approx_pareto_front, interval_pivots, pareto_front, w_coefficients
from bortfast.space import (
    Arch,
    PerLayerArch,
    SearchSpace,
    encoder_flops,
    param_counts,
)

# Heavy names (torch / transformers / onnxruntime behind them) load on first use so `import bortfast` stays light.
# The function `distill` is not re-exported: the name `bortfast.distill` is the submodule.
# Likewise `finetune` / `agora` are submodules (from bortfast.finetune.train import finetune).
_LAZY = {
    "extract": "bortfast.apps.extract",
    "DistillConfig": "bortfast.distill.config",
    "build_student": "bortfast.distill.student",
    "load_student": "bortfast.models.perlayer",
    "load_corpus": "bortfast.data.corpus",
    "load_teacher": "bortfast.data.teacher",
    "short_train_error": "bortfast.distill.short",
    "to_onnx": "bortfast.export.onnx",
    "ExportReport": "bortfast.export.onnx",
    "Encoder": "bortfast.runtime",
    "Classifier": "bortfast.runtime",
    "run_speedup": "bortfast.apps.bench",
    "FinetuneConfig": "bortfast.finetune.config",
    "AgoraConfig": "bortfast.finetune.config",
    "load_finetuned": "bortfast.models.heads",
    "TaskDistillConfig": "bortfast.finetune.config",
    "distill_task": "bortfast.finetune.task_distill",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "Arch",
    "PerLayerArch",
    "load_student",
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
    "TaskDistillConfig",
    "distill_task",
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
