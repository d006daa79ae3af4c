"""Task heads on a BERT encoder, and loading a fine-tuned checkpoint with the right one.

The Bort paper (de Wynter & Perry 2020, §5.1) fine-tunes Bort with a single linear layer on the first token's
representation, and an extra layer for CoLA. The heads stay ``transformers`` models (saved with ``save_pretrained``
as safetensors): classification and regression (STS-B, ``num_labels=1``, MSE) use
``BertForSequenceClassification`` (BERT pooler on the first token, dropout, one linear layer — what alexa/bort's
``BortClassifier`` did); multiple choice (COPA, RACE) uses ``BertForMultipleChoice``. For CoLA the paper adds one
layer; the paper does not say which, so :class:`BortForSequenceClassification` puts one hidden ``Linear(H, H)`` +
GELU + dropout before the output layer, switched on by the config flag ``classifier_hidden_layer`` (saved in
``config.json``), and :func:`load_finetuned` picks the right class from the config. Loading such a checkpoint with
the stock ``BertForSequenceClassification`` would drop the extra layer, so always load through
:func:`load_finetuned`.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn
from transformers import BertConfig, BertForMultipleChoice, BertForSequenceClassification

from bortfast._base.io import clear_weight_errors
from bortfast._base.state import quiet_transformers
from bortfast.models.config import MULTIPLE_CHOICE, head_kind, load_config

__all__ = ["BortForSequenceClassification", "check_head", "load_finetuned"]


class BortForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` whose head has one extra hidden layer (the paper's CoLA head):
    pooled first token -> dropout -> Linear(H, H) -> GELU -> dropout -> Linear(H, labels).
    Enabled by ``config.classifier_hidden_layer = True``; without the flag it is the stock model."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        if getattr(config, "classifier_hidden_layer", False):
            p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
            H = config.hidden_size
            self.classifier = nn.Sequential(nn.Linear(H, H), nn.GELU(), nn.Dropout(p), nn.Linear(H, config.num_labels))
            self.post_init()


def load_finetuned(model_dir: str | os.PathLike) -> nn.Module:
    """Load a checkpoint written by :func:`bortfast.finetune.finetune` (or any BERT classification / multiple-choice
    checkpoint) with the right class, including the CoLA head's extra layer. A checkpoint without a head is an
    error."""
    bert_config = load_config(model_dir)
    kind = head_kind(bert_config)
    if kind is None:
        raise ValueError(f"{model_dir} has no fine-tuned head (architectures {bert_config.architectures}); "
                         "fine-tune it first (bortfast finetune)")
    cls = BortForSequenceClassification if getattr(bert_config, "classifier_hidden_layer", False) else \
        BertForSequenceClassification
    # transformers logs every newly initialised head weight; that is expected when adding a head.
    with quiet_transformers(progress_bars=False), clear_weight_errors(model_dir):
        if kind == MULTIPLE_CHOICE:
            return BertForMultipleChoice.from_pretrained(model_dir, local_files_only=True)
        return cls.from_pretrained(model_dir, local_files_only=True)


def check_head(model: nn.Module, spec: Any) -> None:
    """ValueError unless ``model`` has the head the task ``spec`` (a :class:`bortfast.data.tasks.TaskSpec`) needs:
    multiple choice or sequence classification, with the task's label count."""
    is_mc = isinstance(model, BertForMultipleChoice)
    is_cls = isinstance(model, BertForSequenceClassification)
    if spec.kind == MULTIPLE_CHOICE and not is_mc or spec.kind != MULTIPLE_CHOICE and not is_cls:
        need = "BertForMultipleChoice" if spec.kind == MULTIPLE_CHOICE else "BertForSequenceClassification"
        raise ValueError(f"task {spec.name} ({spec.kind}) needs a {need} model, got {type(model).__name__}")
    if spec.kind != MULTIPLE_CHOICE and model.config.num_labels != spec.num_labels:
        raise ValueError(f"model has num_labels={model.config.num_labels}, task {spec.name} needs {spec.num_labels}")
