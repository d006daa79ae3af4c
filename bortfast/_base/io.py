"""Small shared I/O helpers: atomic file writes (temp file + fsync + rename) and JSON that numpy can feed.

Every file bortfast writes goes through here, so an interrupted job never leaves a truncated result behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: /proc), else set and restored."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    old = os.umask(0o022)
    os.umask(old)
    return old


def _normal_mode(fd: int) -> None:
    """Give a temp file from ``tempfile.mkstemp`` (created 0600) the mode a plain ``open`` would have given it
    under the umask, so what replaces the final path is readable as usual."""
    os.fchmod(fd, 0o666 & ~_umask())


@contextlib.contextmanager
def _replace_on_success(tmp: str, path: Path) -> Iterator[None]:
    """Rename the finished temp file ``tmp`` over ``path`` (and fsync the directory) when the block succeeds; remove
    it when the block fails, whatever the failure (KeyboardInterrupt included)."""
    try:
        yield
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success fsync it and rename it over ``path``; on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with _replace_on_success(tmp, path):
        _normal_mode(fd)
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a library that writes files itself (torch.save, ONNX, savefig);
    rename it over ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    try:
        _normal_mode(fd)  # a library that writes over the path keeps this mode
    finally:
        os.close(fd)
    with _replace_on_success(tmp, path):
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())


def normal_modes(root: str | os.PathLike) -> None:
    """Give every file and directory under ``root`` (itself included) the mode a plain ``open`` / ``mkdir`` would
    under the umask: libraries that write through their own temp files (safetensors writes 0600) otherwise leave
    files another user's service cannot read. Execute bits of files are kept (masked by the umask)."""
    umask = _umask()
    for path in [Path(root), *Path(root).rglob("*")]:
        if path.is_symlink():
            continue
        if path.is_dir():
            os.chmod(path, 0o777 & ~umask)
        else:
            executable = path.stat().st_mode & 0o111
            os.chmod(path, (0o666 | (0o111 if executable else 0)) & ~umask)


def replace_dir(tmp: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a finished temp directory into place (its files' modes made normal: :func:`normal_modes`); an existing
    ``final`` is swapped out first and then removed, so ``final`` always names one complete directory."""
    tmp, final = Path(tmp), Path(final)
    normal_modes(tmp)
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory beside ``path`` to fill (``save_pretrained``, ``copytree``); when the block succeeds
    it replaces ``path`` (:func:`replace_dir`), when it fails it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock (``fcntl.flock``) on ``path`` (created if missing, never removed) for the
    block: processes that read-modify-write one file serialise on it, so none loses another's update. POSIX only."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# The lock of an output directory and the note naming its holder: never another command's output, never removed.
LOCK_NAME = ".bortfast.lock"
HOLDER_NAME = ".bortfast.lock.json"
LOCK_FILES = frozenset({LOCK_NAME, HOLDER_NAME})


class OutputLocked(RuntimeError):
    """Another command is writing the output directory; the message names it."""


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, command: str) -> Iterator[None]:
    """Hold an exclusive lock (``filelock``) on the output ``directory`` (created if missing) while ``command``
    writes it: a second command on the same directory fails at once with :class:`OutputLocked`, naming the holder
    (its command, process id, host and start time). The lock goes with the process, so a killed run leaves none; a
    directory created here for the lock and left empty by the command is removed again."""
    import socket
    import time

    from filelock import FileLock, Timeout

    directory = Path(directory)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = json.loads((directory / HOLDER_NAME).read_text(encoding="utf-8"))
            who = f"{holder['command']} (pid {holder['pid']} on {holder['host']}, since {holder['since']})"
        except (OSError, ValueError, KeyError):
            who = "another bortfast command"
        raise OutputLocked(f"{os.fspath(directory)!r} is being written by {who}; wait for it to finish or use "
                           f"another output directory") from None
    try:
        write_json(directory / HOLDER_NAME, {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                                             "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        yield
    finally:
        with contextlib.suppress(OSError):
            (directory / HOLDER_NAME).unlink()
        lock.release()
        if created and {p.name for p in directory.iterdir()} <= LOCK_FILES:  # a command that wrote nothing leaves
            with contextlib.suppress(OSError):  # no directory behind (it created it only to lock it)
                (directory / LOCK_NAME).unlink()
                directory.rmdir()


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy scalars/arrays and paths into plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_open(path, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2, allow_nan=True)
        f.write("\n")


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line and fsync it, so a finished record survives a kill (journals, metrics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(record), allow_nan=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a JSONL journal; a torn last line (the process died mid-write) is ignored, any other bad line raises."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if lineno == len(lines):
                break
            raise ValueError(f"{path}:{lineno}: corrupt journal line: {err}") from None
    return records


@contextlib.contextmanager
def clear_weight_errors(model_dir: str | os.PathLike) -> Iterator[None]:
    """Turn safetensors' own error type (a corrupt, truncated or empty ``model.safetensors``, not a ValueError or
    OSError) into a ValueError that names the checkpoint directory."""
    try:
        yield
    except Exception as err:
        if type(err).__name__ != "SafetensorError":
            raise
        raise ValueError(f"{os.fspath(model_dir)!r}: model.safetensors is corrupt or truncated ({err})") from None


def _refuse_dangerous_dir(directory: Path) -> None:
    """Never clear ``/``, the home directory, the working directory or any of its parents."""
    resolved = directory.resolve()
    cwd = Path.cwd().resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved == cwd or resolved in cwd.parents:
        raise ValueError(f"refusing to clear {os.fspath(directory)!r} (resolves to {resolved}): it is the root, "
                         f"the home directory, the working directory or one of its parents; use another --out")


def _owned_entry(name: str, owned: frozenset[str]) -> bool:
    """An entry bortfast wrote: one of ``owned``, or a temp/old sibling of one (atomic_open/atomic_dir/replace_dir)."""
    if name in owned:
        return True
    for base in owned:
        stem = Path(base).stem
        if name.startswith((f".{base}.", f".{stem}.", f".old-{base}-")) and (".tmp" in name or ".old-" in name):
            return True
    return False


def clear_own_dir(directory: str | os.PathLike, marker: str, owned: Collection[str]) -> None:
    """Remove what bortfast wrote into ``directory``, and nothing else.

    ``directory`` must hold ``marker`` (the state file that makes it bortfast's own run). Only the top-level
    entries named in ``owned`` (and their temp siblings) are removed; if anything else is there, nothing is
    removed and FileExistsError names the foreign entries. ``/``, the home directory, the working directory and
    its parents are always refused. Symlinks are unlinked, never followed.
    """
    directory = Path(directory)
    if not directory.exists():
        return
    _refuse_dangerous_dir(directory)
    if not directory.is_dir():
        raise NotADirectoryError(f"{os.fspath(directory)!r} is not a directory; use another --out")
    owned = frozenset(owned) | {marker}
    entries = sorted(p for p in directory.iterdir() if p.name not in LOCK_FILES)  # a held lock stays in place
    if not entries:
        return
    if not (directory / marker).is_file():
        raise FileExistsError(f"{os.fspath(directory)!r} is not empty and holds no {marker}: it is not a bortfast "
                              f"run directory, so nothing was removed; use another --out")
    foreign = [p.name for p in entries if not _owned_entry(p.name, owned)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise FileExistsError(f"{os.fspath(directory)!r} holds files bortfast did not write ({shown}), so nothing "
                              f"was removed; move them away or use another --out")
    for path in entries:
        if path.name == marker:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    (directory / marker).unlink()  # last: an interrupted clear is still recognised as our run
    _fsync_dir(directory)
