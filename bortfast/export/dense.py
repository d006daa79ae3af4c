"""The student in the teacher's space (issue 29, item 5): its learned projection H_s → H_t shipped as a
sentence-transformers ``Dense`` module, so ``SentenceTransformer(student_dir)`` emits teacher-width vectors that can
search an index the teacher built.

The distillation (:mod:`bortfast.distill.student`) trains a linear map from the student's token states to the
teacher's and saves it as ``projection.safetensors``. Mean pooling commutes with an affine map
(``W·mean(h) + b == mean(W·h + b)`` over the same tokens), so the map applied once to the pooled vector is the one
the student was trained with. The module goes after the Pooling module and before any Normalize module, with the
identity activation, in the layout ``sentence_transformers.models.Dense`` saves and loads (checked against
sentence-transformers 6.3): ``2_Dense/config.json`` (``in_features``, ``out_features``, ``bias``,
``activation_function``) and ``2_Dense/model.safetensors`` (``linear.weight`` (out, in), ``linear.bias`` (out,)).

:func:`bortfast.export.to_onnx` records such a module in the ONNX metadata (``bortfast.dense``) and
:class:`bortfast.runtime.Encoder` applies it after pooling, so the ONNX file and ``SentenceTransformer(dir)`` give the
same vectors; the graph itself stays the encoder's (the copy under ``onnx/`` is what sentence-transformers' ONNX
backend runs before its own Pooling and Dense modules).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bortfast._base.io import write_json

DENSE_TYPE = "sentence_transformers.models.Dense"
IDENTITY = "torch.nn.modules.linear.Identity"  # what Dense saves for torch.nn.Identity()
DENSE_DIR = "2_Dense"


@dataclass(frozen=True)
class DenseModule:
    """An identity-activation linear map of pooled sentence vectors: ``x @ weight.T + bias``."""

    weight: np.ndarray  # (out_features, in_features) float32
    bias: np.ndarray | None  # (out_features,) float32

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n, in_features) → (n, out_features) float32."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"the Dense module maps {self.in_features}-wide vectors, got width {x.shape[-1]}")
        y = x @ self.weight.T
        return (y + self.bias if self.bias is not None else y).astype(np.float32)

    def to_metadata(self) -> str:
        """The module as one JSON string (float32 little-endian arrays in base64) for the ONNX metadata; read back
        by :class:`bortfast.runtime.Encoder`."""
        def b64(a: np.ndarray) -> str:
            return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")

        return json.dumps({"in_features": self.in_features, "out_features": self.out_features,
                           "activation": "identity", "weight": b64(self.weight),
                           "bias": None if self.bias is None else b64(self.bias)})


def _modules(model_dir: Path) -> list[dict] | None:
    path = model_dir / "modules.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _kind(module: dict) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def read_dense(model_dir: str | os.PathLike) -> DenseModule | None:
    """The directory's Dense module (``modules.json``), None without one. Raises ValueError for a Dense module
    bortfast cannot apply outside sentence-transformers: one with an activation other than the identity, or more
    than one Dense module."""
    model_dir = Path(model_dir)
    dense = [m for m in (_modules(model_dir) or []) if _kind(m) == "Dense"]
    if not dense:
        return None
    if len(dense) > 1:
        raise ValueError(f"{str(model_dir)!r} has {len(dense)} Dense modules; bortfast applies one")
    sub = model_dir / dense[0].get("path", "")
    config = json.loads((sub / "config.json").read_text(encoding="utf-8"))
    activation = config.get("activation_function", "torch.nn.modules.activation.Tanh")  # Dense's default
    if activation != IDENTITY:
        raise ValueError(f"{str(sub)!r} has activation {activation!r}; bortfast applies identity-activation Dense "
                         f"modules only ({IDENTITY})")
    from safetensors.numpy import load_file

    if (sub / "model.safetensors").is_file():
        weights = load_file(str(sub / "model.safetensors"))
    else:
        raise ValueError(f"{str(sub)!r} has no model.safetensors (a pytorch_model.bin Dense is not read here)")
    bias = weights.get("linear.bias") if config.get("bias", True) else None
    return DenseModule(weights["linear.weight"].astype(np.float32), None if bias is None else bias.astype(np.float32))


def _module_dir(model_dir: Path, path: str) -> Path:
    """``model_dir / path`` for a module folder named in modules.json, refused unless it is a folder directly inside
    ``model_dir`` (so replacing a module can never remove the model directory itself or anything outside it)."""
    target = model_dir / path
    if not path or Path(path).is_absolute() or target.resolve().parent != model_dir.resolve():
        raise ValueError(f"{str(model_dir)!r}'s modules.json names module folder {path!r}: a module must live in a "
                         f"folder directly inside the model directory")
    return target


def write_dense_module(model_dir: str | os.PathLike, weight: np.ndarray, bias: np.ndarray | None) -> DenseModule:
    """Add (or replace) ``model_dir``'s Dense module: ``2_Dense/`` with the map ``x @ weight.T + bias``, placed in
    ``modules.json`` after the Pooling module and before any Normalize module (which moves to ``3_Normalize``). A
    directory without ``modules.json`` gets Transformer → mean Pooling → Dense. Returns the module written."""
    from safetensors.numpy import save_file

    model_dir = Path(model_dir)
    weight = np.ascontiguousarray(weight, dtype=np.float32)
    if weight.ndim != 2:
        raise ValueError(f"weight must be (out_features, in_features), got shape {weight.shape}")
    if bias is not None:
        bias = np.ascontiguousarray(bias, dtype=np.float32)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"bias must be ({weight.shape[0]},), got shape {bias.shape}")
    modules = _modules(model_dir)
    if modules is None:
        hidden = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"]
        (model_dir / "1_Pooling").mkdir(exist_ok=True)
        write_json(model_dir / "1_Pooling" / "config.json", {"embedding_dimension": hidden, "pooling_mode": "mean"})
        modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    for old in [m for m in modules if _kind(m) == "Dense"]:
        shutil.rmtree(_module_dir(model_dir, old["path"]), ignore_errors=True)
    modules = [m for m in modules if _kind(m) != "Dense"]
    kinds = [_kind(m) for m in modules]
    if "Pooling" not in kinds:
        raise ValueError(f"{str(model_dir)!r}'s modules.json has no Pooling module to put the Dense module after")
    dense = DenseModule(weight, bias)
    sub = model_dir / DENSE_DIR
    sub.mkdir(parents=True, exist_ok=True)
    write_json(sub / "config.json", {"in_features": dense.in_features, "out_features": dense.out_features,
                                     "bias": bias is not None, "activation_function": IDENTITY})
    tensors = {"linear.weight": weight} | ({"linear.bias": bias} if bias is not None else {})
    save_file(tensors, str(sub / "model.safetensors"))
    at = kinds.index("Pooling") + 1
    modules.insert(at, {"idx": at, "name": str(at), "path": DENSE_DIR, "type": DENSE_TYPE})
    for idx, m in enumerate(modules):  # renumber; a later module's folder follows its new position
        m["idx"], m["name"] = idx, str(idx)
        if idx > at and m.get("path"):
            new = f"{idx}_{m['path'].split('_', 1)[-1]}"
            if new != m["path"]:
                if _module_dir(model_dir, m["path"]).is_dir():
                    shutil.rmtree(_module_dir(model_dir, new), ignore_errors=True)
                    (model_dir / m["path"]).rename(model_dir / new)
                m["path"] = new
    write_json(model_dir / "modules.json", modules)
    return dense
