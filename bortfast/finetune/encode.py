"""Task data as model inputs, and model outputs as predictions: the encoding and prediction half of fine-tuning.

Examples (:class:`bortfast.data.tasks.Example`) are tokenised once, unpadded (:func:`encode`); batches pad to their
own longest example (:func:`collate`), in an order grouped by length when asked (:func:`batch_order`, as
transformers' ``group_by_length``). :func:`predict` returns raw outputs in the data's order, :func:`decide` turns
them into labels and :func:`evaluate` into the task's metrics. Fine-tuning (:mod:`bortfast.finetune.train`), Agora
and task distillation share these.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from bortfast.data.tasks import (
    MULTIPLE_CHOICE,
    REGRESSION,
    Example,
    TaskSpec,
    compute_metrics,
    get_task,
)
from bortfast.models.config import load_config
from bortfast.models.heads import check_head

__all__ = ["Encoded", "batch_order", "check_tokenizer", "collate", "decide", "encode", "evaluate", "example_lengths",
           "load_tokenizer", "predict"]


def check_tokenizer(tokenizer: PreTrainedTokenizerBase, model_dir: str | os.PathLike) -> None:
    """A tokenizer that emits ids beyond the model's embedding table is the wrong one (or a broken save)."""
    vocab_size = load_config(model_dir).vocab_size
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
    check_head(model, spec)
    data = encode(examples, tokenizer, spec, max_seq_len)
    outputs = predict(model, data, spec.kind, tokenizer.pad_token_id, batch_size)
    return compute_metrics(spec, decide(outputs, spec.kind), data.labels)
