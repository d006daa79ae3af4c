"""Check an installed bortfast wheel from outside the source tree (run by .ci/run as ``python -I``, from a
temporary directory): the package and its compiled core come from the environment's site-packages, the core's
OpenBLAS loads, and two small calls into the C++ give known answers."""

import sys
from pathlib import Path

import numpy as np

import bortfast
from bortfast import _core
from bortfast.space import Arch

source = Path(sys.argv[1]).resolve() / "bortfast"  # the checkout's package (.venv may sit inside the checkout)
for module in (bortfast, _core):
    where = Path(module.__file__).resolve()
    assert source not in where.parents, f"{module.__name__} was imported from the source tree: {where}"
    assert Path(sys.prefix).resolve() in where.parents, f"{module.__name__} is not installed in {sys.prefix}: {where}"

# The cost model in C++: BERT-base's encoder + pooler has 109,482,240 parameters (Devlin et al.'s 110 M).
assert Arch(12, 12, 768, 3072).param_count() == 109_482_240, Arch(12, 12, 768, 3072).param_count()

# The encoder kernel (its GEMMs are OpenBLAS's): every output token vector is layer-normalised.
encoder = _core.Encoder(2, 2, 8, 16)
encoder.init_random(seed=0)
hidden = np.random.default_rng(0).standard_normal((1, 4, 8)).astype(np.float32)  # (B, T, H)
out = encoder.forward(hidden, np.ones((1, 4), np.float32), threads=1)  # (B, T, H)
assert out.shape == (1, 4, 8) and np.isfinite(out).all(), out
assert np.allclose(out.mean(-1), 0, atol=1e-5) and np.allclose(out.std(-1), 1, atol=1e-3), out

print(f"bortfast {bortfast.__version__} from {Path(bortfast.__file__).parent}: core {_core.kernel_hash}, "
      f"{' '.join(_core.blas_info().split()[:2])}")
