"""Students whose layers differ in width (:class:`bortfast.space.PerLayerArch`): building and loading them, and the
BERT encoder inside any BERT model (:func:`bert_encoder`).

A per-layer student is a plain ``transformers`` BERT model whose layer l has its Q/K/V/O projections cut to
``heads[l]·head_dim`` features and its FFN to ``intermediate[l]`` neurons, and whose attention reshapes to its own
head count. The shapes and that attention live in one file, :mod:`bortfast.models.modeling_bortfast_perlayer`
(``narrow_layers``), which bortfast imports from its package and also copies into every per-layer student directory
it writes (:func:`bortfast.models.ship_model_code`), so ``AutoModel.from_pretrained(dir, trust_remote_code=True)``
builds the same model elsewhere.

Why a loader. transformers 5.x dropped ``pruned_heads`` / ``prune_heads`` from BertConfig and BERT (the 5.24
``modeling_bert`` has neither), and no BertConfig field sets an FFN width per layer, so stock ``from_pretrained``
cannot rebuild these shapes: it refuses the checkpoint with a size-mismatch error rather than loading it wrongly.
:func:`load_student` is bortfast's loader: it reads ``config.json`` (``bortfast_per_layer``: heads and FFN width per
layer), builds the model at those shapes with the package's code (never the directory's copy of it) and loads
``model.safetensors`` strictly. A uniform checkpoint goes straight to ``from_pretrained``.

Cutting a per-layer student out of a teacher (inheritance) is distillation's: :mod:`bortfast.distill.perlayer`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bortfast.models.config import is_per_layer
from bortfast.space import PER_LAYER_KEY, PerLayerArch

__all__ = ["bert_encoder", "build_per_layer_model", "load_student"]


def bert_encoder(model: Any) -> Any:
    """The ``BertModel`` inside ``model`` (itself, or ``.bert`` of a BertFor* model); ValueError otherwise."""
    from transformers import BertModel

    if isinstance(model, BertModel):
        return model
    base = getattr(model, "bert", None)
    if isinstance(base, BertModel):
        return base
    raise ValueError(f"weight inheritance needs a BERT-layout teacher (BertModel / BertFor*), got "
                     f"{type(model).__name__}; use init='random' for other architectures")


def build_per_layer_model(config: Any, model_class: str = "BertForMaskedLM", *, seed: int = 0,
                          **model_kwargs: Any) -> Any:
    """A freshly initialised ``model_class`` of the per-layer shape ``config`` records (``bortfast_per_layer``),
    seeded from ``seed`` with the global torch RNG left untouched."""
    import transformers

    from bortfast.models.modeling_bortfast_perlayer import narrow_layers  # the package's file, not a directory's

    if PerLayerArch.from_config(config) is None:  # also validates the widths
        raise ValueError(f"config has no {PER_LAYER_KEY}: build a uniform model with transformers directly")
    cls = getattr(transformers, model_class, None)
    if cls is None or not model_class.startswith("Bert"):
        raise ValueError(f"model_class must be a transformers Bert* class, got {model_class!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config, **model_kwargs)
        narrow_layers(bert_encoder(model), config)
    return model


def _remap_keys(state: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    """Map a checkpoint's keys onto the model's: as they are, or adding / stripping the ``bert.`` prefix (a
    BertForMaskedLM checkpoint loads as a BertModel and back); keys the model does not have are left out."""
    for transform in (lambda k: k, lambda k: k.removeprefix("bert."), lambda k: "bert." + k):
        mapped = {transform(k): v for k, v in state.items()}
        if any(k.startswith("encoder.") or k.startswith("bert.encoder.") for k in wanted & set(mapped)):
            return {k: v for k, v in mapped.items() if k in wanted}
    return {}


def load_student(directory: str | os.PathLike, model_class: str | None = None, **model_kwargs: Any) -> Any:
    """Load a bortfast student (per-layer or uniform) from a directory of ``config.json`` + ``model.safetensors``.

    ``model_class`` defaults to the config's ``architectures[0]`` (``BertModel`` loads the encoder of a masked-LM
    checkpoint). Extra keyword arguments go to the model constructor (e.g. ``add_pooling_layer=False``) or, for a
    uniform checkpoint, to ``from_pretrained`` (e.g. ``attn_implementation="eager"``). Weights load only from
    safetensors; missing or mis-shaped tensors raise ValueError naming them.
    """
    import transformers
    from safetensors.torch import load_file
    from transformers import BertConfig

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ValueError(f"{str(directory)!r} is not a model directory: no config.json")
    attn = model_kwargs.pop("attn_implementation", None)
    config = BertConfig.from_pretrained(directory, **({"attn_implementation": attn} if attn else {}))
    model_class = model_class or (list(config.architectures or []) or ["BertModel"])[0]
    if not is_per_layer(config):
        return getattr(transformers, model_class).from_pretrained(directory, use_safetensors=True,
                                                                  **({"attn_implementation": attn} if attn else {}),
                                                                  **model_kwargs)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{str(directory)!r} has no model.safetensors (bortfast students are safetensors)")
    model = build_per_layer_model(config, model_class, **model_kwargs)
    own = model.state_dict()
    state = _remap_keys(load_file(str(weights)), set(own))
    bad = [f"{k}: {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model" for k, v in state.items()
           if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{str(weights)!r} does not match its config's per-layer shapes: {'; '.join(bad[:3])}")
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    missing = sorted(set(own) - set(state) - tied)
    pooler = [k for k in missing if k.startswith("pooler.")]
    if pooler and len(pooler) == len(missing) and model_class == "BertModel":  # saved without its pooler
        model.pooler, missing = None, []
    if missing:
        raise ValueError(f"{str(weights)!r} lacks {len(missing)} tensors of {model_class}, e.g. {missing[:3]}")
    model.load_state_dict(state, strict=False)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return model.eval()
