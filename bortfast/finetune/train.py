"""Fine-tuning a (distilled) BERT encoder on GLUE / SuperGLUE / RACE-style tasks: the training loop.

The Bort paper (de Wynter & Perry 2020, §5.1) fine-tunes Bort with a single linear layer on the first token's
representation, and an extra layer for CoLA; it selects fine-tuning hyperparameters with Agora (see
:mod:`bortfast.finetune.agora`). This module is the plain fine-tuning that Agora calls per hyperparameter set θ:

* Heads: :func:`build_model` loads the encoder with the head the task needs (the head classes and
  :func:`~bortfast.models.heads.load_finetuned` are in :mod:`bortfast.models.heads`); encoding, batching and
  prediction are :mod:`bortfast.finetune.encode`'s.
* Training: AdamW (no decay on biases and LayerNorm), linear warmup then linear decay to 0, gradient clipping at
  1.0, evaluation after every epoch, the best epoch kept (on disk: written to a temp directory and renamed), seeds
  for torch / numpy / random and the data order.
* Model selection is on a held-out slice of the training set by default (``heldout_fraction`` 0.1), so the dev
  numbers stay untouched by selection; ``heldout_fraction=0`` selects on dev, as alexa/bort's script does.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import BertForMultipleChoice, BertForSequenceClassification, PreTrainedTokenizerBase

from bortfast._base.io import atomic_dir, clear_weight_errors, write_json
from bortfast._base.optim import TrainingStep
from bortfast._base.state import quiet_transformers
from bortfast.data.tasks import (
    CLASSIFICATION,
    MULTIPLE_CHOICE,
    REGRESSION,
    Example,
    TaskSpec,
    compute_metrics,
    get_task,
    load_examples,
    majority_baseline,
    primary_score,
)
from bortfast.finetune.config import FinetuneConfig
from bortfast.finetune.encode import (
    batch_order,
    check_tokenizer,
    collate,
    decide,
    encode,
    evaluate,
    example_lengths,
    load_tokenizer,
    predict,
)
from bortfast.models import ship_model_code
from bortfast.models.config import head_kind, load_config
from bortfast.models.heads import BortForSequenceClassification, check_head

log = logging.getLogger(__name__)


def fit_seq_len(config: FinetuneConfig, model_config: Any) -> FinetuneConfig:
    """Cap ``max_seq_len`` at the model's position table: longer inputs would index past it."""
    limit = int(model_config.max_position_embeddings)
    if config.max_seq_len <= limit:
        return config
    log.warning("max_seq_len %d exceeds the model's %d positions; truncating inputs to %d",
                config.max_seq_len, limit, limit)
    return replace(config, max_seq_len=limit)


def build_model(model_dir: str | os.PathLike, task: str | TaskSpec,
                config: FinetuneConfig | None = None) -> nn.Module:
    """Load ``model_dir`` with the head ``task`` needs. A bare encoder / MLM checkpoint gets a new head; a checkpoint
    that already has the same head (same kind and label count) continues from it; any other head is an error."""
    spec = get_task(task)
    config = config or FinetuneConfig()
    bert_config = load_config(model_dir)
    have = head_kind(bert_config)
    want = spec.kind
    if have is not None:
        if have != want or (want == CLASSIFICATION and bert_config.num_labels != spec.num_labels):
            raise ValueError(f"{model_dir} already has a {have} head with num_labels={bert_config.num_labels}; task "
                             f"{spec.name} needs a {want} head with num_labels={spec.num_labels}. Fine-tune from the "
                             "pretrained encoder (the distilled checkpoint) instead")
    hidden_layer = config.classifier_hidden_layer
    if hidden_layer is None:
        hidden_layer = bool(getattr(bert_config, "classifier_hidden_layer", spec.name == "cola"))
    kwargs: dict[str, Any] = {"num_labels": spec.num_labels, "finetuning_task": spec.name,
                              "classifier_dropout": config.classifier_dropout}
    if spec.kind == CLASSIFICATION:
        kwargs["id2label"] = dict(enumerate(spec.labels))
        kwargs["label2id"] = {name: i for i, name in enumerate(spec.labels)}
        kwargs["problem_type"] = "single_label_classification"
    elif spec.kind == REGRESSION:
        kwargs["problem_type"] = "regression"
    for key, value in kwargs.items():
        setattr(bert_config, key, value)
    bert_config.classifier_hidden_layer = hidden_layer if spec.kind != MULTIPLE_CHOICE else False
    # transformers logs every newly initialised head weight; that is expected when adding a head.
    with quiet_transformers(progress_bars=False), clear_weight_errors(model_dir):
        if spec.kind == MULTIPLE_CHOICE:
            return BertForMultipleChoice.from_pretrained(model_dir, config=bert_config, local_files_only=True)
        cls = BortForSequenceClassification if hidden_layer else BertForSequenceClassification
        return cls.from_pretrained(model_dir, config=bert_config, local_files_only=True)


# ---------------------------------------------------------------------------------------------------- training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds code that still uses the legacy global generator
    torch.manual_seed(seed)


def split_heldout(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded random ``fraction`` of ``examples`` held out (at least 1 each side)."""
    n = len(examples)
    k = min(max(1, round(n * fraction)), n - 1)
    if n < 2:
        raise ValueError(f"cannot hold out part of {n} training example(s)")
    perm = np.random.default_rng(seed).permutation(n)
    held = set(perm[:k].tolist())
    return [e for i, e in enumerate(examples) if i not in held], [examples[i] for i in sorted(held)]


def subsample(examples: Sequence[Example], n: int | None, seed: int) -> list[Example]:
    """A seeded random subset of ``n`` examples in their original order (all of them when n is None or larger)."""
    if n is None or n >= len(examples):
        return list(examples)
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=n, replace=False))
    return [examples[i] for i in keep]


@dataclass
class TrainOutcome:
    """What one training run produced (the model holds the best epoch's weights)."""

    model: nn.Module
    history: list[dict] = field(default_factory=list)  # per epoch: loss, selection metrics
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


def train_model(model: nn.Module, tokenizer: PreTrainedTokenizerBase, task: str | TaskSpec,
                train: Sequence[Example], select: Sequence[Example], config: FinetuneConfig,
                on_improve: Any = None, desc: str = "finetune") -> TrainOutcome:
    """Fine-tune ``model`` in place on ``train``, score ``select`` after every epoch, and load the best epoch's
    weights back at the end. ``on_improve(model, epoch, metrics)`` is called whenever an epoch is the best so far."""
    spec = get_task(task)
    check_head(model, spec)
    if not train:
        raise ValueError(f"task {spec.name}: no training examples")
    if not select:
        raise ValueError(f"task {spec.name}: no examples to select the best epoch on")
    seed_everything(config.seed)
    pad_id = tokenizer.pad_token_id
    data = encode(train, tokenizer, spec, config.max_seq_len)
    sel = encode(select, tokenizer, spec, config.max_seq_len)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = steps_per_epoch * config.epochs
    train_step = TrainingStep(model, lr=config.learning_rate, total_steps=total,
                              warmup_steps=int(config.warmup_ratio * total), weight_decay=config.weight_decay,
                              max_grad_norm=config.max_grad_norm, adam_eps=1e-6)
    order_rng = np.random.default_rng(config.seed)
    lengths = example_lengths(data, spec.kind)
    out = TrainOutcome(model=model)
    best_score, best_state = -math.inf, None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    bar = tqdm(total=total, desc=desc, disable=not config.progress, leave=False)
    for epoch in range(config.epochs):
        model.train()
        losses = []
        for index in batch_order(lengths, config.batch_size, order_rng, config.group_by_length):
            batch = collate(data, index, pad_id, spec.kind)
            loss = model(**batch).loss
            train_step(loss)
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        outputs = predict(model, sel, spec.kind, pad_id, config.eval_batch_size)
        metrics = compute_metrics(spec, decide(outputs, spec.kind), sel.labels)
        score = primary_score(metrics)
        out.history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **metrics})
        if score > best_score or best_state is None:
            best_score, out.best_epoch, out.best_metrics = score, epoch, metrics
            best_state = copy.deepcopy(model.state_dict())
            if on_improve is not None:
                on_improve(model, epoch, metrics)
    bar.close()
    model.load_state_dict(best_state)
    out.cpu_seconds = time.process_time() - cpu0
    out.wall_seconds = time.perf_counter() - wall0
    return out


def save_checkpoint(model: nn.Module, tokenizer: PreTrainedTokenizerBase, path: str | os.PathLike) -> None:
    """``save_pretrained`` (safetensors) model + tokenizer into a temp directory beside ``path``, then swap it in,
    so ``path`` always holds one complete checkpoint."""
    with atomic_dir(path) as tmp, quiet_transformers(progress_bars=False):
        model.save_pretrained(tmp, safe_serialization=True)
        ship_model_code(tmp)  # a per-layer model carries its model class (auto_map)
        tokenizer.save_pretrained(tmp)


def finetune(model_dir: str | os.PathLike, task: str | TaskSpec, data: str | os.PathLike,
             out_dir: str | os.PathLike | None = None, config: FinetuneConfig | None = None,
             tokenizer_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fine-tune the encoder in ``model_dir`` on ``task`` read from ``data``; keep the best epoch in
    ``out_dir/best`` and write ``out_dir/results.json``. Returns the results (dev metrics under ``"dev"``)."""
    spec = get_task(task)
    config = fit_seq_len(config or FinetuneConfig(), load_config(model_dir))  # missing / non-BERT model first
    tokenizer = load_tokenizer(tokenizer_dir or model_dir)
    check_tokenizer(tokenizer, model_dir)
    train_all = load_examples(spec, data, "train")
    dev = subsample(load_examples(spec, data, "dev"), config.max_eval_examples, config.seed)
    train = subsample(train_all, config.max_train_examples, config.seed)
    if config.heldout_fraction > 0:
        train, select = split_heldout(train, config.heldout_fraction, config.seed)
        select_on = "heldout"
    else:
        select, select_on = dev, "dev"
    model = build_model(model_dir, spec, config)
    out_path = Path(out_dir) if out_dir is not None else None

    def keep(m: nn.Module, epoch: int, metrics: dict) -> None:
        if out_path is not None:
            save_checkpoint(m, tokenizer, out_path / "best")

    outcome = train_model(model, tokenizer, spec, train, select, config, on_improve=keep, desc=f"finetune {spec.name}")
    dev_metrics = outcome.best_metrics if select_on == "dev" else \
        evaluate(model, tokenizer, spec, dev, config.max_seq_len, config.eval_batch_size)
    results = {
        "task": spec.name, "model": str(model_dir), "data": str(data), "method": "finetune",
        "config": asdict(config), "n_train": len(train), "n_select": len(select), "n_dev": len(dev),
        "select_on": select_on, "history": outcome.history, "best_epoch": outcome.best_epoch,
        "dev": dev_metrics, "majority_baseline_dev": majority_baseline(spec, train_all, dev),
        "train_cpu_seconds": outcome.cpu_seconds, "train_wall_seconds": outcome.wall_seconds,
        "checkpoint": str(out_path / "best") if out_path is not None else None,
    }
    if out_path is not None:
        write_json(out_path / "results.json", results)
    return results
