"""Quality measured on real data: STS-B Spearman of sentence embeddings.

DESIGN.md §8. The score is Spearman's ρ between the cosine similarity of the two sentences' embeddings and the human
score, as in the STS benchmark (scipy's spearmanr).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def sts_spearman(embed: Callable[[Sequence[str]], np.ndarray], pairs: StsPairs) -> float:
    """Spearman ρ between cos(embed(s1), embed(s2)) and the gold scores."""
    from scipy.stats import spearmanr

    a, b = embed(pairs.first), embed(pairs.second)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(spearmanr(cos, pairs.scores).statistic)
