"""``pipeline.json``: a run's identity (its settings) and the outputs of every finished stage."""

from __future__ import annotations

import json
from pathlib import Path

from bortfast._base.io import LOCK_FILES, clear_own_dir, write_json
from bortfast.pipeline.config import RUN_OUTPUTS, STATE_NAME, RunConfig


class RunState:
    """``pipeline.json``: the run's identity and each finished stage's outputs."""

    def __init__(self, cfg: RunConfig) -> None:
        self.path = Path(cfg.out_dir) / STATE_NAME
        identity = json.loads(json.dumps(cfg.identity()))
        if self.path.exists() and not cfg.overwrite:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.path} is corrupt ({err}); re-run with --overwrite to start again") from None
            if data.get("config") != identity:
                changed = sorted(k for k in set(identity) | set(data.get("config", {}))
                                 if identity.get(k) != data.get("config", {}).get(k))
                raise FileExistsError(
                    f"{cfg.out_dir} holds a run with other settings (differs in {changed}); use another --out or "
                    f"--overwrite to discard it")
            self.data = data
        else:
            if cfg.overwrite:
                clear_own_dir(cfg.out_dir, STATE_NAME, RUN_OUTPUTS)  # only our own files; refuses . ~ /
            elif Path(cfg.out_dir).exists() and any(p.name not in LOCK_FILES for p in Path(cfg.out_dir).iterdir()):
                raise FileExistsError(f"{cfg.out_dir} is not empty and is not a bortfast run directory (no "
                                      f"{STATE_NAME}); use another --out")
            self.data = {"config": identity, "stages": {}}
            self.save()

    def save(self) -> None:
        write_json(self.path, self.data)

    def done(self, stage: str) -> dict | None:
        return self.data["stages"].get(stage)

    def finish(self, stage: str, outputs: dict, seconds: float) -> None:
        self.data["stages"][stage] = {"outputs": outputs, "seconds": round(seconds, 2)}
        self.save()


