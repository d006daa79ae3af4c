"""Load OpenBLAS from the ``scipy-openblas32`` wheel before ``bortfast._core``, which links it for the encoder
kernel's GEMMs (DESIGN.md §5). The wheel's library lives in its own package directory, so the dynamic linker
would not find it by itself; once loaded here, ``_core``'s dependency on ``libscipy_openblas.so`` resolves to it.
"""

from __future__ import annotations

import ctypes
import os

import scipy_openblas32

LIBRARY_PATH = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
_library = ctypes.CDLL(LIBRARY_PATH)
