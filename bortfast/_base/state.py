"""Process-wide settings a library call may change only for its own duration: torch's thread count and the
``transformers`` log verbosity. Each guard restores the previous value on exit, also after an exception."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` for the block (``None``: leave it alone)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet_transformers(progress_bars: bool = True) -> Iterator[None]:
    """``transformers`` logs errors only for the block (its per-load reports, e.g. newly initialised head weights,
    are expected here); ``progress_bars=False`` also hides its progress bars."""
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars, hub_bars_off = hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    if not progress_bars:
        hf_logging.disable_progress_bar()  # transformers' bars and huggingface_hub's
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars and not progress_bars:
            hf_logging.enable_progress_bar()
            if hub_bars_off:  # enable_progress_bar turned huggingface_hub's on too: they were off
                hub_utils.disable_progress_bars()
