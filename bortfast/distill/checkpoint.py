"""Distillation checkpoints: atomic directories of safetensors weights, optimiser state read with
``torch.load(weights_only=True)``, and every RNG state for an exact resume.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    pass



from bortfast.data.teacher import PICKLE_WEIGHT_FILES, Teacher


def _checkpoint_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")),
                  key=lambda p: int(p.name.split("-")[1]))


def _torch_load_safe(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to unpickle {str(path)!r}: it holds objects other than tensors and plain containers "
            f"(loaded with weights_only=True): {str(err).splitlines()[0]}"
        ) from None


def _rng_state() -> dict:
    import torch

    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is what user code may use)
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def _set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    legacy = (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _save_model_dir(module: Any, teacher: Teacher, directory: Path, *, encoder_only: bool = False) -> None:
    """The student (with its MLM head, or with ``encoder_only`` its encoder alone: a ``BertModel``), the teacher's
    tokenizer, the sentence-transformers modules of a sentence-transformers teacher and the projection."""
    from bortfast.distill.inherit import write_sentence_transformers_files
    from bortfast.models import ship_model_code

    (module.student.bert if encoder_only else module.student).save_pretrained(directory)
    ship_model_code(directory)  # a per-layer student carries its model class (auto_map): AutoModel loads it
    teacher.tokenizer.save_pretrained(directory)
    write_sentence_transformers_files(teacher.name, directory, module.student.config.hidden_size)
    if module.projection is not None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in module.projection.state_dict().items()},
                  str(directory / "projection.safetensors"))


def _load_student(directory: Path) -> Any:
    from transformers import BertForMaskedLM

    if not (directory / "model.safetensors").is_file():
        if any((directory / f).is_file() for f in PICKLE_WEIGHT_FILES):
            raise ValueError(f"checkpoint {str(directory)!r} holds pickle weights (pytorch_model.bin); refusing to "
                             f"unpickle them — bortfast checkpoints are safetensors")
        raise ValueError(f"checkpoint {str(directory)!r} has no model.safetensors")
    from bortfast.models.config import is_per_layer
    from bortfast.models.perlayer import load_student

    if is_per_layer(json.loads((directory / "config.json").read_text(encoding="utf-8"))):
        return load_student(directory, "BertForMaskedLM")
    return BertForMaskedLM.from_pretrained(directory, use_safetensors=True)
