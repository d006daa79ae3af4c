"""The student against the teacher on the same inputs: held-out masked-token accuracy of both (same masked
positions) and how closely the student's sentence embeddings follow the teacher's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def mlm_accuracy(model: Any, tokenizer: Any, texts: Sequence[str], *, max_len: int = 128, seed: int = 0,
                 batch_size: int = 32) -> dict[str, float | int]:
    """Masked-token accuracy of a ``*ForMaskedLM`` on ``texts``: BERT masking (15 %, 80/10/10) with a fixed
    seed, so two models (teacher and student, same tokenizer) are scored on the same masked positions."""
    import torch

    from bortfast.distill.masking import Masker

    if not texts:
        raise ValueError("mlm_accuracy needs at least one text, got none")
    masker = Masker(tokenizer)
    correct = total = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for b, s in enumerate(range(0, len(texts), batch_size)):
            batch = tokenizer(list(texts[s:s + batch_size]), padding=True, truncation=True, max_length=max_len,
                              return_tensors="pt")
            inputs, labels = masker(batch["input_ids"], seed=seed * 100_003 + b)
            labels[batch["attention_mask"] == 0] = -100  # never score padding
            logits = model(input_ids=inputs, attention_mask=batch["attention_mask"]).logits
            sel = labels != -100
            correct += int((logits.argmax(-1)[sel] == labels[sel]).sum())
            total += int(sel.sum())
    model.train(was_training)
    if total == 0:
        raise ValueError(f"mlm_accuracy: no token of the {len(texts)} texts was masked (texts too short)")
    return {"accuracy": correct / total, "masked_tokens": total}


def quality_scores(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """How much of the teacher's behaviour the student keeps, on the same sentences.

    ``cosine``: mean cosine similarity between each sentence's student and teacher embedding (needs equal widths,
    i.e. after the distillation projection). ``similarity_spearman``: Spearman correlation between the two models'
    pairwise sentence-similarity matrices (width-free; 1.0 = the same ranking of which sentences are alike).
    """
    from scipy.stats import spearmanr

    def normed(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    s, t = normed(student), normed(teacher)
    iu = np.triu_indices(len(s), k=1)
    scores = {"similarity_spearman": float(spearmanr((s @ s.T)[iu], (t @ t.T)[iu]).statistic)}
    if s.shape[1] == t.shape[1]:
        scores["cosine"] = float(np.mean(np.sum(s * t, axis=1)))
    return scores
