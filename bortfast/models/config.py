"""What bortfast reads from a model directory's ``config.json``: the one loader (:func:`load_config`), the kind of
task head a checkpoint carries (:func:`head_kind`), and whether its layers differ in width (:func:`is_per_layer`).

bortfast works on BERT-family checkpoints (``model_type`` ``"bert"``) saved with ``save_pretrained``; it never
fetches a hub name (it runs offline). Every stage that opens a model directory (fine-tuning, task distillation,
export, the speed benchmark) goes through :func:`load_config`, so a wrong directory fails the same way everywhere,
before any weights load.

This module imports transformers only inside :func:`load_config`: the head kinds are plain strings that
:mod:`bortfast.data.tasks` also uses to say which head a task needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bortfast.space import PER_LAYER_KEY

__all__ = ["CLASSIFICATION", "ENCODER_ONLY", "HEAD_CLASSES", "MULTIPLE_CHOICE", "REGRESSION", "head_kind",
           "is_per_layer", "load_config"]

# The kinds of task head (transformers' problem types): what a task needs and what a checkpoint carries.
CLASSIFICATION = "classification"
REGRESSION = "regression"
MULTIPLE_CHOICE = "multiple_choice"

# Checkpoint classes without a task head, and those with one (the kind of head each carries).
ENCODER_ONLY = frozenset({"BertForMaskedLM", "BertModel", "BertForPreTraining", "BertLMHeadModel"})
HEAD_CLASSES = {"BertForSequenceClassification": CLASSIFICATION, "BortForSequenceClassification": CLASSIFICATION,
                "BertForMultipleChoice": MULTIPLE_CHOICE}


def load_config(model_dir: str | os.PathLike) -> Any:
    """The ``BertConfig`` saved in ``model_dir``. FileNotFoundError when the directory does not exist; ValueError
    when it has no ``config.json``, holds invalid JSON, a model that is not BERT (``model_type`` other than
    ``"bert"``) or a configuration transformers rejects, each naming the directory and the offending value."""
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} does not exist or is not a directory")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{str(model_dir)!r} is not a transformers model directory: no config.json (is it a "
                         "save_pretrained directory? hub names are not fetched: bortfast runs offline)")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(config_path)!r} is not valid JSON: {err}") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if model_type != "bert":
        raise ValueError(f"{str(model_dir)!r} holds a model_type={model_type!r} model, which is not supported: "
                         "bortfast works on BERT-family models (model_type 'bert')")
    from transformers import BertConfig

    try:
        return BertConfig.from_pretrained(path, local_files_only=True)
    except Exception as err:  # huggingface_hub's strict validation raises its own (non-ValueError) error type
        raise ValueError(f"{str(config_path)!r} holds an invalid BERT configuration: "
                         f"{' '.join(str(err).split())}") from None


def head_kind(config: Any) -> str | None:
    """The kind of task head a checkpoint's config records (CLASSIFICATION, REGRESSION, MULTIPLE_CHOICE), or None
    for an encoder without one; ValueError for architectures bortfast knows neither as an encoder nor as a head."""
    archs = set(config.architectures or [])
    heads = {HEAD_CLASSES[a] for a in archs if a in HEAD_CLASSES}
    if heads:
        (kind,) = heads
        if kind == CLASSIFICATION and getattr(config, "problem_type", None) == "regression":
            return REGRESSION
        return kind
    if archs - ENCODER_ONLY:
        raise ValueError(f"checkpoint architectures {sorted(archs)} are neither an encoder nor a head bortfast "
                         f"knows ({sorted(ENCODER_ONLY | set(HEAD_CLASSES))})")
    return None


def is_per_layer(config: Any) -> bool:
    """Whether a transformers config (or its dict) records per-layer widths (``bortfast_per_layer``)."""
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    return get(PER_LAYER_KEY) is not None
