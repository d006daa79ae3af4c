"""Retrieval agreement with no labels (issue 29, item 5): how many of the teacher's own nearest neighbours a student
finds. Most sentence-transformers users search an index built with the teacher; what they lose with a student is the
neighbours it no longer returns. ``recall@k`` of the teacher's top-k needs no relevance labels: the teacher's ranking
over the same sentences is the reference, as in distillation-for-retrieval evaluations that score a student by its
overlap with the teacher's top-k lists."""

from __future__ import annotations

import numpy as np


def _normed(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def top_k_neighbours(queries: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each query's k most cosine-similar rows of ``index``, best first; row i of ``index`` is
    query i's own sentence and never its own neighbour (queries and index hold the same n sentences)."""
    sims = _normed(queries) @ _normed(index).T  # (n, n)
    np.fill_diagonal(sims, -np.inf)
    # a stable sort of -sims: ties go to the lower index, so two equal rankings give equal lists
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def neighbour_recall(student: np.ndarray, teacher: np.ndarray, k: int = 10, *,
                     index: np.ndarray | None = None) -> float:
    """Mean over the n sentences of |student's top-k ∩ teacher's top-k| / k (cosine, the sentence itself excluded).

    ``student`` (n, d_s) and ``teacher`` (n, d_t) embed the same n sentences in the same order; the teacher's
    top-k is found among its own vectors. The student's top-k is found among ``index`` (default: its own vectors,
    any width): pass the teacher's vectors as ``index`` to score student queries against an index the teacher
    built (then ``student`` must have the teacher's width, e.g. projected into the teacher's space)."""
    student, teacher = np.asarray(student), np.asarray(teacher)
    index = student if index is None else np.asarray(index)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if student.ndim != 2 or teacher.ndim != 2 or index.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, dim), got shapes {student.shape}, {teacher.shape}, "
                         f"{index.shape}")
    n = len(teacher)
    if len(student) != n or len(index) != n:
        raise ValueError(f"student ({len(student)}), teacher ({n}) and index ({len(index)}) must embed the same "
                         f"sentences")
    if index.shape[1] != student.shape[1]:
        raise ValueError(f"queries of width {student.shape[1]} cannot search an index of width {index.shape[1]}")
    if n <= k:
        raise ValueError(f"recall@{k} needs more than {k} sentences (each has {k} neighbours besides itself), "
                         f"got {n}")
    got, want = top_k_neighbours(student, index, k), top_k_neighbours(teacher, teacher, k)
    hits = sum(len(set(g).intersection(w)) for g, w in zip(got.tolist(), want.tolist()))
    return hits / (n * k)
