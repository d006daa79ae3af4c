"""bortfast: optimal sub-architecture extraction for BERT (Bort), with a C++ core and ONNX Runtime deployment.

The compiled module ``bortfast._core`` is private; this package re-exports the public surface.
"""

from bortfast.selection import approx_pareto_front, interval_pivots, pareto_front, w_coefficients
from bortfast.space import (
    Arch,
    SearchSpace,
    encoder_flops,
    param_counts,
)

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "SearchSpace",
    "encoder_flops",
    "param_counts",
    "__version__",
    "approx_pareto_front",
    "interval_pivots",
    "pareto_front",
    "w_coefficients",
]
