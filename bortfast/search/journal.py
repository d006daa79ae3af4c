"""The search journal: finished short trainings, one fsync'd JSON line each, so a killed search resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bortfast._base.io import append_jsonl, read_jsonl
from bortfast.space import Arch, PerLayerArch

JOURNAL_NAME = "journal.jsonl"


# Settings that determine a single ê(ξ, θ); a journal written under different values cannot be reused. The other
# settings (ε, Θ, the latency proxy) only decide *which* (ξ, θ) get trained, so their journal entries stay valid.
ERROR_SETTINGS = ("teacher", "teacher_arch", "corpus", "steps", "seq_len", "train_batch_size", "seed",
                  "heldout_batch_size", "vocab_fingerprint", "corpus_fingerprint", "error_fn", "error_definition")
# Bump when the code that computes ê changes meaning: a journal written under another definition is refused.
ERROR_DEFINITION_VERSION = 3  # 3: + token cosine for hidden teachers; 2: inherited students; 1: random init



# ----------------------------------------------------------------------------------------------------- journal
def _arch_key(arch: Arch | PerLayerArch) -> tuple[int, ...] | str:
    return arch.tuple if isinstance(arch, Arch) else arch.spec


def _arch_json(arch: Arch | PerLayerArch) -> list[int] | str:
    return list(arch.tuple) if isinstance(arch, Arch) else arch.spec


def _theta_key(theta: Mapping[str, Any]) -> str:
    return json.dumps(dict(theta), sort_keys=True)


class Journal:
    """Append-only record of finished short trainings, one JSON line each (fsync'd), so a killed search resumes.

    The first line of every journal file is a header with the run's settings. Opening a directory whose journal
    was written under different error-determining settings (:data:`ERROR_SETTINGS`) raises ``ValueError`` naming
    them. Each rank appends to its own file (``journal.jsonl`` for rank 0, ``journal.rank{r}.jsonl`` otherwise)
    and reads all of them, so a run may resume under a different number of ranks. ``directory=None`` keeps the
    journal in memory only.
    """

    def __init__(self, directory: str | os.PathLike | None, settings: Mapping[str, Any], *, rank: int = 0) -> None:
        self.settings = dict(settings)
        self.results: dict[tuple[tuple[int, ...], str], float] = {}
        self.path: Path | None = None
        if directory is None:
            return
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / (JOURNAL_NAME if rank == 0 else f"journal.rank{rank}.jsonl")
        self._repair(self.path)
        for file in sorted(directory.glob("journal*.jsonl")):
            records = read_jsonl(file)
            if not records:
                continue
            header = records[0]
            if header.get("kind") != "header":
                raise ValueError(f"{file} is not a bortfast search journal (first line is not a header)")
            self._check_compatible(file, header.get("settings", {}))
            for rec in records[1:]:
                arch = rec["arch"]  # [D, A, H, I], or a per-layer spec string
                self.results[(arch if isinstance(arch, str) else tuple(arch), _theta_key(rec["theta"]))] = \
                    float(rec["error"])
        if not self.path.exists() or self.path.stat().st_size == 0:
            append_jsonl(self.path, {"kind": "header", "settings": self.settings})

    @staticmethod
    def _repair(path: Path) -> None:
        """Cut a torn last line (the process died mid-write) so the next append starts on a fresh line."""
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def _check_compatible(self, file: Path, old: Mapping[str, Any]) -> None:
        diffs = [f"{k}: journal has {old.get(k)!r}, this run has {self.settings.get(k)!r}"
                 for k in ERROR_SETTINGS if _jsonable(old.get(k)) != _jsonable(self.settings.get(k))]
        if diffs:
            raise ValueError(
                f"{file} was written by a search with different settings ({'; '.join(diffs)}); use a fresh "
                f"output directory or --overwrite to discard it"
            )

    def get(self, arch: Arch | PerLayerArch, theta: Mapping[str, Any]) -> float | None:
        return self.results.get((_arch_key(arch), _theta_key(theta)))

    def record(self, arch: Arch | PerLayerArch, theta: Mapping[str, Any], error: float, seconds: float) -> None:
        self.results[(_arch_key(arch), _theta_key(theta))] = error
        if self.path is not None:
            append_jsonl(self.path, {"kind": "trial", "arch": _arch_json(arch), "theta": dict(theta),
                                     "error": error, "seconds": round(seconds, 3)})

    def __len__(self) -> int:
        return len(self.results)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
