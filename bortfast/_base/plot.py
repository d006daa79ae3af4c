"""Figures through matplotlib's object API (``Figure``, no pyplot): no backend is selected and no global figure
state is touched, so plotting from a library call changes nothing in the caller's process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bortfast._base.io import atomic_path


def new_figure(figsize: tuple[float, float], dpi: int = 120) -> tuple[Any, Any]:
    """(figure, axes) of one subplot, not registered with pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    return fig, fig.add_subplot()


def save_figure(fig: Any, path: str | os.PathLike) -> None:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (PNG by default)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")
