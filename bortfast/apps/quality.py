"""Quality measured on real data: STS-B Spearman of sentence embeddings with the model's own pooling.

DESIGN.md §8. A sentence-transformers model directory says its pooling in ``1_Pooling/config.json`` (mean for
all-MiniLM-L6-v2); a plain BERT directory defaults to mean pooling. The score is Spearman's ρ between the cosine
similarity of the two sentences' embeddings and the human score, as in the STS benchmark (scipy's spearmanr).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bortfast.data.teacher import Pooling, model_pooling


@dataclass(frozen=True)
class StsPairs:
    """Sentence pairs with gold similarity scores (STS-B TSV layout: sentence1, sentence2, score columns)."""

    first: list[str]
    second: list[str]
    scores: np.ndarray  # (n,) float64
    source: str


def read_sts(path: str | os.PathLike, limit: int | None = None) -> StsPairs:
    """Read an STS-B style TSV (header with ``sentence1``, ``sentence2``, ``score``); ValueError names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"STS file {os.fspath(path)!r} does not exist")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as err:
        raise ValueError(f"STS file {os.fspath(path)!r} is not UTF-8 ({err})") from None
    if not rows:
        raise ValueError(f"STS file {os.fspath(path)!r} is empty")
    header = rows[0]
    missing = [c for c in ("sentence1", "sentence2", "score") if c not in header]
    if missing:
        raise ValueError(f"STS file {os.fspath(path)!r} lacks column(s) {missing} (STS-B layout expected; "
                         f"header is {header[:10]})")
    i1, i2, isc = (header.index(c) for c in ("sentence1", "sentence2", "score"))
    first, second, scores = [], [], []
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) <= max(i1, i2, isc):
            continue  # a short line (no score: a test split) carries no gold label
        try:
            scores.append(float(row[isc]))
        except ValueError:
            raise ValueError(f"{os.fspath(path)}:{lineno}: score {row[isc]!r} is not a number") from None
        first.append(row[i1])
        second.append(row[i2])
        if limit is not None and len(scores) >= limit:
            break
    if len(scores) < 3:
        raise ValueError(f"STS file {os.fspath(path)!r} has {len(scores)} scored pairs; need at least 3")
    return StsPairs(first, second, np.asarray(scores, dtype=np.float64), os.fspath(path))


def head_pairs(pairs: StsPairs, n: int) -> StsPairs:
    """The first ``n`` pairs (a cheaper sample, e.g. for scoring many pivots)."""
    return StsPairs(pairs.first[:n], pairs.second[:n], pairs.scores[:n], pairs.source)


def pool(hidden: Any, mask: Any, pooling: Pooling) -> Any:
    """(B, L, H) torch token states and their (B, L) attention mask → (B, H) sentence embeddings."""
    if pooling == "cls":
        return hidden[:, 0]
    m = mask[..., None].to(hidden.dtype)
    if pooling == "max":
        return (hidden - (1 - m) * 1e9).amax(1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


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


def sts_spearman(embed: Callable[[Sequence[str]], np.ndarray], pairs: StsPairs) -> float:
    """Spearman ρ between cos(embed(s1), embed(s2)) and the gold scores."""
    from scipy.stats import spearmanr

    a, b = embed(pairs.first), embed(pairs.second)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(spearmanr(cos, pairs.scores).statistic)


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


def plot_quality(res: dict, path: str | os.PathLike) -> None:
    """``quality.png``: STS Spearman vs latency î for the teacher, ξ* (distilled) and the pivots (inherited,
    before training). Uses matplotlib's object API: no global backend or pyplot state is touched."""
    from bortfast._base.plot import new_figure, save_figure

    fig, ax = new_figure(figsize=(7, 4.8))
    pivots = res.get("pivots") or []
    if pivots:
        ax.scatter([p["latency"] for p in pivots], [p["sts_inherited"] for p in pivots], s=22, c="0.55",
                   label="pivots, inherited (before training; 400 pairs)")
    ax.scatter([res["student_latency"]], [res["student"]], marker="*", s=300, c="tab:orange", edgecolors="k",
               zorder=5, label=f"ξ* distilled: {res['student']:.3f} ({100 * res['retained']:.0f}% of teacher)")
    ax.scatter([res["teacher_latency"]], [res["teacher"]], marker="X", s=120, c="k",
               label=f"teacher: {res['teacher']:.3f}")
    ax.set_xscale("log")
    ax.set_xlabel(f"latency î ({res['latency_unit']})")
    ax.set_ylabel("STS Spearman ρ")
    ax.set_title(f"Quality vs latency on {Path(res['file']).name} ({res['pairs']} pairs, {res['pooling']} pooling)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["StsPairs", "mlm_accuracy", "model_pooling", "plot_quality", "pool", "read_sts", "sts_spearman",
           "torch_embedder"]
def sentence_embeddings(model: Any, tokenizer: Any, sentences: list[str], seq_len: int,
                        projection: Any | None = None, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last hidden states (as sentence-transformers pools all-MiniLM-L6-v2), optionally projected
    (an affine projection of the pooled vector equals the mean of the projected token states)."""
    from bortfast.apps.quality import torch_embedder

    return torch_embedder(model, tokenizer, pooling="mean", max_len=seq_len, batch_size=batch_size,
                          head=projection)(sentences)


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


