"""Names a package re-exports but loads on first use (PEP 562 module ``__getattr__``), so that importing the
package does not import the heavy modules (torch, transformers, onnxruntime) behind them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` in ``table`` is imported from the module ``table[name]``
    when first asked for; any other name raises the usual ``AttributeError``."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
