"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

# Loads the OpenBLAS library that bortfast._core links, so it must come before anything imports _core.
from bortfast import _openblas  # noqa: F401  # isort: skip
from bortfast.kernel import EncoderKernel
from bortfast.profile import LatencyStats, measure_latency, profile_space
from bortfast.space import (
    Arch,
    SearchSpace,
    encoder_flops,
    param_counts,
)

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "EncoderKernel",
    "LatencyStats",
    "measure_latency",
    "profile_space",
    "SearchSpace",
    "encoder_flops",
    "param_counts",
    "__version__",
]
