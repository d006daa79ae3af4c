"""Sentence embeddings of a transformers encoder with the model's own pooling.

A sentence-transformers model directory says its pooling in ``1_Pooling/config.json`` (mean for all-MiniLM-L6-v2;
:func:`bortfast.data.teacher.model_pooling` reads it); a plain BERT directory defaults to mean pooling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bortfast.data.teacher import Pooling


def pool(hidden: Any, mask: Any, pooling: Pooling) -> Any:
    """(B, L, H) torch token states and their (B, L) attention mask → (B, H) sentence embeddings."""
    from bortfast.distill.loss import masked_mean  # the distillation's sentence terms pool the same way

    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        m = mask[..., None].to(hidden.dtype)
        return (hidden - (1 - m) * 1e9).amax(1)
    return masked_mean(hidden, mask)


def torch_embedder(model: Any, tokenizer: Any, *, pooling: Pooling = "mean", max_len: int = 128,
                   batch_size: int = 64, head: Any = None) -> Callable[[Sequence[str]], np.ndarray]:
    """``texts -> (n, H) float32`` for a transformers encoder (``.bert`` of a BertFor* is used); ``head`` is an
    optional module applied to the pooled embedding (a learned projection)."""
    import torch

    enc = getattr(model, "bert", model)

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = []
        was_training = enc.training
        enc.eval()
        with torch.no_grad():
            for s in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[s:s + batch_size]), padding=True, truncation=True, max_length=max_len,
                                  return_tensors="pt")
                hidden = enc(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                e = pool(hidden, batch["attention_mask"], pooling)
                out.append((head(e) if head is not None else e).float().numpy())
        enc.train(was_training)
        return np.concatenate(out)

    return embed


def sentence_embeddings(model: Any, tokenizer: Any, sentences: list[str], seq_len: int,
                        projection: Any | None = None, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states (as sentence-transformers pools all-MiniLM-L6-v2), optionally projected
    (an affine projection of the pooled vector equals the mean of the projected token states)."""
    return torch_embedder(model, tokenizer, pooling="mean", max_len=seq_len, batch_size=batch_size,
                          head=projection)(sentences)
