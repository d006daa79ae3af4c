"""``torch.distributed`` in one place: rank and world size, joining the torchrun process group, and the
collectives the search and the trainer use.

The process group is created with a timeout (``BORTFAST_DIST_TIMEOUT`` seconds, default 600), so a collective that
waits on a rank that died raises instead of hanging the job. A collective that fails -- a peer raised and left the
group (gloo: "connection reset by peer"), or the timeout passed -- raises a RuntimeError that says so and names
this rank, so every rank ends with an error (tests/test_dist.py: a 2-rank gloo job with an injected failure).

Without an initialised group every helper is the single-process case (rank 0 of 1), so callers need no branches
of their own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

DEFAULT_TIMEOUT_S = 600.0


def timeout() -> timedelta:
    """The collective timeout: ``BORTFAST_DIST_TIMEOUT`` seconds (default 600)."""
    raw = os.environ.get("BORTFAST_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(raw)
    except ValueError:
        raise ValueError(f"BORTFAST_DIST_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if not seconds > 0:
        raise ValueError(f"BORTFAST_DIST_TIMEOUT must be positive, got {raw!r}")
    return timedelta(seconds=seconds)


def launch_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them in the environment (0, 1, 0 when not launched by it)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _initialised() -> Any | None:
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    return dist if dist.is_available() and dist.is_initialized() else None


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) without one."""
    dist = _initialised()
    return (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)


@contextlib.contextmanager
def process_group(*, use_cuda: bool | None = None) -> Iterator[bool]:
    """Join the torchrun process group for the block when launched with WORLD_SIZE > 1 (nccl with CUDA, else gloo;
    collectives time out after :func:`timeout`), and leave it afterwards if this call created it. Yields whether
    the run is distributed."""
    _, world, _ = launch_info()
    if world <= 1:
        yield False
        return
    import torch
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        cuda = torch.cuda.is_available() if use_cuda is None else use_cuda and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=timeout())
    try:
        yield True
    finally:
        if own:
            dist.destroy_process_group()


@contextlib.contextmanager
def _collective(name: str) -> Iterator[None]:
    """Turn a failed collective (torch's DistBackendError and gloo's errors are RuntimeErrors) into one message
    that says what probably happened and where to look."""
    try:
        yield
    except RuntimeError as err:
        rank, world = rank_world()
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise RuntimeError(
            f"rank {rank} of {world}: {name} failed: another rank raised or stopped, or did not reach it within "
            f"{timeout().total_seconds():g} s (BORTFAST_DIST_TIMEOUT); see the other ranks' errors ({detail})"
        ) from err


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    dist = _initialised()
    if dist is not None:
        with _collective("barrier"):
            dist.barrier()


def all_gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    dist = _initialised()
    if dist is None:
        return [obj]
    parts: list[Any] = [None] * dist.get_world_size()
    with _collective("all_gather"):
        dist.all_gather_object(parts, obj)
    return parts


def broadcast(*objs: Any) -> list[Any]:
    """Rank 0's ``objs`` on every rank."""
    dist = _initialised()
    if dist is None:
        return list(objs)
    box = list(objs)
    with _collective("broadcast"):
        dist.broadcast_object_list(box, src=0)
    return box


def mean_over_ranks(values: list[float], device: Any = "cpu") -> list[float]:
    """The element-wise mean of ``values`` over all ranks."""
    dist = _initialised()
    if dist is None:
        return list(values)
    import torch

    reduced = torch.tensor(values, dtype=torch.float64, device=device)
    with _collective("all_reduce"):
        dist.all_reduce(reduced)
    return (reduced / dist.get_world_size()).tolist()
