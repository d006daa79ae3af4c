"""Fine-tuning a (distilled) BERT encoder on GLUE / SuperGLUE / RACE-style tasks.

The Bort paper (de Wynter & Perry 2020, §5.1) fine-tunes Bort with a single linear layer on the first token's
representation, and an extra layer for CoLA; it selects fine-tuning hyperparameters with Agora (see
:mod:`bortfast.finetune.agora`). This module is the plain fine-tuning that Agora calls per hyperparameter set θ:

* Heads (the models stay ``transformers`` models, saved with ``save_pretrained`` as safetensors):
  classification and regression (STS-B, ``num_labels=1``, MSE) use ``BertForSequenceClassification``
  (BERT pooler on the first token, dropout, one linear layer — what alexa/bort's ``BortClassifier`` did);
  multiple choice (COPA, RACE) uses ``BertForMultipleChoice``. For CoLA the paper adds one layer; the paper does
  not say which, so :class:`BortForSequenceClassification` puts one hidden ``Linear(H, H)`` + GELU + dropout before
  the output layer, switched on by the config flag ``classifier_hidden_layer`` (saved in ``config.json``), and
  :func:`load_finetuned` picks the right class from the config. Loading such a checkpoint with the stock
  ``BertForSequenceClassification`` would drop the extra layer, so always load through :func:`load_finetuned`.
* Training: AdamW (no decay on biases and LayerNorm), linear warmup then linear decay to 0, gradient clipping at
  1.0, evaluation after every epoch, the best epoch kept (on disk: written to a temp directory and renamed), seeds
  for torch / numpy / random and the data order.
* Model selection is on the dev set by default (what alexa/bort's script does); ``heldout_fraction > 0`` carves a
  held-out slice from the training set instead, so the dev numbers stay untouched by selection.
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
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertForMultipleChoice,
    BertForSequenceClassification,
    PreTrainedTokenizerBase,
)

from bortfast._base.io import atomic_dir, clear_weight_errors, write_json
from bortfast._base.optim import TrainingStep
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
from bortfast.models import ship_model_code

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- models


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


_ENCODER_ONLY = {"BertForMaskedLM", "BertModel", "BertForPreTraining", "BertLMHeadModel"}
_HEAD_CLASS = {"BertForSequenceClassification": CLASSIFICATION, "BortForSequenceClassification": CLASSIFICATION,
               "BertForMultipleChoice": MULTIPLE_CHOICE}


def fit_seq_len(config: FinetuneConfig, model_config: Any) -> FinetuneConfig:
    """Cap ``max_seq_len`` at the model's position table: longer inputs would index past it."""
    limit = int(model_config.max_position_embeddings)
    if config.max_seq_len <= limit:
        return config
    log.warning("max_seq_len %d exceeds the model's %d positions; truncating inputs to %d",
                config.max_seq_len, limit, limit)
    return replace(config, max_seq_len=limit)


def _load_config(model_dir: str | os.PathLike) -> BertConfig:
    from transformers import AutoConfig

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model directory {str(model_dir)!r} has no config.json (is it a save_pretrained "
                                "directory? hub names are not fetched: bortfast runs offline)")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if config.model_type != "bert":
        raise ValueError(f"{model_dir}: model_type {config.model_type!r} is not supported; bortfast fine-tunes BERT "
                         "encoders (model_type 'bert')")
    return config


def _head_kind(config: BertConfig) -> str | None:
    """The task kind of the checkpoint's head: classification/regression, multiple_choice, or None (no head)."""
    archs = set(config.architectures or [])
    heads = {_HEAD_CLASS[a] for a in archs if a in _HEAD_CLASS}
    if heads:
        (kind,) = heads
        if kind == CLASSIFICATION and getattr(config, "problem_type", None) == "regression":
            return REGRESSION
        return kind
    if archs - _ENCODER_ONLY:
        raise ValueError(f"checkpoint architectures {sorted(archs)} are neither an encoder nor a head bortfast "
                         f"knows ({sorted(_ENCODER_ONLY | set(_HEAD_CLASS))})")
    return None


def _silence_load_report() -> Any:
    """transformers logs every newly initialised head weight; that is expected when adding a head."""
    from bortfast._base.state import quiet_transformers

    return quiet_transformers(progress_bars=False)


def build_model(model_dir: str | os.PathLike, task: str | TaskSpec,
                config: FinetuneConfig | None = None) -> nn.Module:
    """Load ``model_dir`` with the head ``task`` needs. A bare encoder / MLM checkpoint gets a new head; a checkpoint
    that already has the same head (same kind and label count) continues from it; any other head is an error."""
    spec = get_task(task)
    config = config or FinetuneConfig()
    bert_config = _load_config(model_dir)
    have = _head_kind(bert_config)
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
    with _silence_load_report(), clear_weight_errors(model_dir):
        if spec.kind == MULTIPLE_CHOICE:
            return BertForMultipleChoice.from_pretrained(model_dir, config=bert_config, local_files_only=True)
        cls = BortForSequenceClassification if hidden_layer else BertForSequenceClassification
        return cls.from_pretrained(model_dir, config=bert_config, local_files_only=True)


def load_finetuned(model_dir: str | os.PathLike) -> nn.Module:
    """Load a checkpoint written by :func:`finetune` (or any BERT classification / multiple-choice checkpoint)
    with the right class, including the CoLA head's extra layer. A checkpoint without a head is an error."""
    bert_config = _load_config(model_dir)
    kind = _head_kind(bert_config)
    if kind is None:
        raise ValueError(f"{model_dir} has no fine-tuned head (architectures {bert_config.architectures}); "
                         "fine-tune it first (bortfast finetune)")
    cls = BortForSequenceClassification if getattr(bert_config, "classifier_hidden_layer", False) else \
        BertForSequenceClassification
    with _silence_load_report(), clear_weight_errors(model_dir):
        if kind == MULTIPLE_CHOICE:
            return BertForMultipleChoice.from_pretrained(model_dir, local_files_only=True)
        return cls.from_pretrained(model_dir, local_files_only=True)


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, model_dir: str | os.PathLike) -> None:
    """A tokenizer that emits ids beyond the model's embedding table is the wrong one (or a broken save)."""
    vocab_size = _load_config(model_dir).vocab_size
    if len(tokenizer) > vocab_size:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens but {model_dir} embeds only vocab_size="
                         f"{vocab_size}; use the tokenizer the model was trained with")


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``path`` (tokenizer.json / vocab.txt); offline only."""
    if not any((Path(path) / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise FileNotFoundError(f"no tokenizer in {str(path)!r}: it has no tokenizer.json, vocab.txt or "
                                "tokenizer_config.json (save the tokenizer beside the model, or pass --tokenizer)")
    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"no tokenizer in {str(path)!r} (save the tokenizer beside the model, or pass "
                                f"--tokenizer): {err}") from None


# ---------------------------------------------------------------------------------------------------- data


@dataclass
class Encoded:
    """Token ids of a list of examples, unpadded (padding happens per batch)."""

    input_ids: list  # per example: list[int], or for multiple choice list[list[int]] (one per choice)
    token_type_ids: list
    labels: np.ndarray  # (N,) int64 class / choice indices or float32 regression targets


def encode(examples: Sequence[Example], tokenizer: PreTrainedTokenizerBase, task: str | TaskSpec,
           max_seq_len: int) -> Encoded:
    spec = get_task(task)
    if spec.kind == MULTIPLE_CHOICE:
        firsts = [e.text_a for e in examples for _ in range(spec.num_choices)]
        seconds = [c for e in examples for c in _choices(e, spec)]
        # Truncate the context (article / premise) first so the question and option survive.
        enc = tokenizer(firsts, seconds, truncation="only_first" if max_seq_len > 64 else "longest_first",
                        max_length=max_seq_len)
        C = spec.num_choices
        ids = [enc["input_ids"][i:i + C] for i in range(0, len(firsts), C)]
        tt = [enc["token_type_ids"][i:i + C] for i in range(0, len(firsts), C)]
    else:
        a = [e.text_a for e in examples]
        b = [e.text_b for e in examples] if spec.kind != MULTIPLE_CHOICE and examples and \
            examples[0].text_b is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=max_seq_len)
        ids, tt = enc["input_ids"], enc["token_type_ids"]
    dtype = np.float32 if spec.kind == REGRESSION else np.int64
    labels = np.array([e.label if e.label is not None else -100 for e in examples], dtype=dtype)
    return Encoded(ids, tt, labels)


def _choices(e: Example, spec: TaskSpec) -> tuple[str, ...]:
    if e.choices is None or len(e.choices) != spec.num_choices:
        raise ValueError(f"{e.source}: multiple-choice example needs {spec.num_choices} choices, got {e.choices!r}")
    return e.choices


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(data: Encoded, index: Sequence[int], pad_id: int, kind: str) -> dict[str, torch.Tensor]:
    """A padded batch of the examples at ``index``: (B, T) tensors, or (B, C, T) for multiple choice."""
    if kind == MULTIPLE_CHOICE:
        C = len(data.input_ids[index[0]])
        flat_ids = [s for i in index for s in data.input_ids[i]]
        flat_tt = [s for i in index for s in data.token_type_ids[i]]
        ids = _pad(flat_ids, pad_id).view(len(index), C, -1)  # (B, C, T)
        tt = _pad(flat_tt, 0).view(len(index), C, -1)
    else:
        ids = _pad([data.input_ids[i] for i in index], pad_id)  # (B, T)
        tt = _pad([data.token_type_ids[i] for i in index], 0)
    return {"input_ids": ids, "token_type_ids": tt, "attention_mask": (ids != pad_id).long(),
            "labels": torch.from_numpy(data.labels[list(index)])}


def example_lengths(data: Encoded, kind: str) -> np.ndarray:
    """Tokens of each example (multiple choice: its longest choice), the length its batch pads to."""
    return np.array([max(map(len, ids)) if kind == MULTIPLE_CHOICE else len(ids) for ids in data.input_ids])


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                group_by_length: bool) -> list[list[int]]:
    """One epoch's batches. Plain: a random permutation cut into batches. Grouped by length (transformers'
    ``group_by_length``): the permutation is cut into chunks of 50 batches, each chunk sorted by length and cut
    into batches, and the batches shuffled, so every batch pads to similar lengths and the order stays random."""
    order = rng.permutation(len(lengths))
    if group_by_length:
        chunk = 50 * batch_size
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")]
                                for c in np.split(order, range(chunk, len(order), chunk))])
    batches = [order[s:s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, kind: str, pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Raw outputs: (N, labels) logits, (N,) regression scores, or (N, choices) choice scores, in ``data``'s order.
    Batches are formed in length order, so each pads only to its own similar lengths (SST-2's phrases: ~3x fewer
    tokens than batches in data order); the attention mask keeps the outputs those of each example alone."""
    model.eval()
    n = len(data.labels)
    if n == 0:
        raise ValueError("predict: no examples to score")
    order = np.argsort(example_lengths(data, kind), kind="stable")
    outs = []
    for start in range(0, n, batch_size):
        batch = collate(data, order[start:start + batch_size].tolist(), pad_id, kind)
        batch.pop("labels")
        outs.append(model(**batch).logits.float().numpy())
    stacked = np.concatenate(outs)  # in length order
    logits = np.empty_like(stacked)
    logits[order] = stacked
    return logits[:, 0] if kind == REGRESSION else logits


def decide(outputs: np.ndarray, kind: str) -> np.ndarray:
    """Predictions from raw outputs: class / choice indices, or the regression scores themselves."""
    return outputs if kind == REGRESSION else outputs.argmax(axis=-1)


def evaluate(model: nn.Module, tokenizer: PreTrainedTokenizerBase, task: str | TaskSpec,
             examples: Sequence[Example], max_seq_len: int = 128, batch_size: int = 64) -> dict[str, float]:
    """The task's metrics of ``model`` on ``examples``."""
    spec = get_task(task)
    _check_head(model, spec)
    data = encode(examples, tokenizer, spec, max_seq_len)
    outputs = predict(model, data, spec.kind, tokenizer.pad_token_id, batch_size)
    return compute_metrics(spec, decide(outputs, spec.kind), data.labels)


def _check_head(model: nn.Module, spec: TaskSpec) -> None:
    is_mc = isinstance(model, BertForMultipleChoice)
    is_cls = isinstance(model, BertForSequenceClassification)
    if spec.kind == MULTIPLE_CHOICE and not is_mc or spec.kind != MULTIPLE_CHOICE and not is_cls:
        need = "BertForMultipleChoice" if spec.kind == MULTIPLE_CHOICE else "BertForSequenceClassification"
        raise ValueError(f"task {spec.name} ({spec.kind}) needs a {need} model, got {type(model).__name__}")
    if spec.kind != MULTIPLE_CHOICE and model.config.num_labels != spec.num_labels:
        raise ValueError(f"model has num_labels={model.config.num_labels}, task {spec.name} needs {spec.num_labels}")


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
    _check_head(model, spec)
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
    with atomic_dir(path) as tmp, _silence_load_report():
        model.save_pretrained(tmp, safe_serialization=True)
        ship_model_code(tmp)  # a per-layer model carries its model class (auto_map)
        tokenizer.save_pretrained(tmp)


def finetune(model_dir: str | os.PathLike, task: str | TaskSpec, data: str | os.PathLike,
             out_dir: str | os.PathLike | None = None, config: FinetuneConfig | None = None,
             tokenizer_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fine-tune the encoder in ``model_dir`` on ``task`` read from ``data``; keep the best epoch in
    ``out_dir/best`` and write ``out_dir/results.json``. Returns the results (dev metrics under ``"dev"``)."""
    spec = get_task(task)
    config = fit_seq_len(config or FinetuneConfig(), _load_config(model_dir))  # missing / non-BERT model first
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
