"""A corpus of sentences, one per row, for sentence-level distillation (DESIGN.md §8).

:func:`load_sentences` reads the same sources as :func:`bortfast.data.corpus.load_corpus` (text files, directories,
``hf:`` datasets; the same decoding policy and ``exclude``), cuts every line into sentences, and returns a
:class:`~bortfast.data.corpus.Corpus` whose rows are single sentences — ``[CLS] sentence [SEP]`` padded with the
tokenizer's pad id to ``seq_len`` — instead of packed blocks. A sentence-embedding teacher pools each sentence on its
own, so this is the data its pooled embedding is defined on (sentence-transformers distils embedding models on
sentences in the same way).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal

import numpy as np

from bortfast._base.checks import check_int
from bortfast.data.corpus import Corpus, _block_ids, _read_texts, checked_corpus_args, heldout_count

# A sentence ends at . ! or ? followed by white space and an upper-case letter, a digit, a quote or a bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(line: str, *, min_words: int = 3, max_words: int = 64) -> Iterator[str]:
    """The sentences of ``line`` (white space normalised) with ``min_words``..``max_words`` words; a longer piece
    is cut into consecutive chunks of ``max_words`` words."""
    for piece in _SENTENCE_END.split(line.strip()):
        words = piece.split()
        for start in range(0, len(words), max_words):
            chunk = words[start:start + max_words]
            if len(chunk) >= min_words:
                yield " ".join(chunk)


def load_sentences(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    tokenizer: Any,
    *,
    seq_len: int,
    heldout_fraction: float = 0.05,
    seed: int = 0,
    errors: Literal["replace", "strict"] = "replace",
    max_sentences: int | None = None,
    exclude: Collection[str] | None = None,
) -> Corpus:
    """Sentences of the corpus, one per row: ``(n, seq_len)`` int64, ``[CLS] ... [SEP]`` then the pad id
    (``Corpus.pad_id``); a sentence longer than ``seq_len - 2`` tokens is truncated. Duplicate sentences are kept
    once. Rows are shuffled with ``seed``, ``max_sentences`` keeps the first (after shuffling) and
    ``ceil(heldout_fraction * n)`` (at least one) go to ``heldout``."""
    import torch

    paths = checked_corpus_args("load_sentences", paths, seq_len, heldout_fraction, errors)
    if max_sentences is not None:
        check_int("max_sentences", max_sentences, 2)
    cls_id, sep_id = _block_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sources, texts, replaced = _read_texts(paths, errors)
    held = {ln.strip() for ln in exclude} if exclude else set()
    sentences = list(dict.fromkeys(s for _, lines in texts for ln in lines if ln.strip() not in held
                                   for s in split_sentences(ln)))
    names = ", ".join(repr(p) for p in map(str, paths))
    if len(sentences) < 2:
        raise ValueError(f"corpus {names} has {len(sentences)} sentences of 3 words or more; need at least two "
                         f"(one for training, one held out)")
    order = np.random.default_rng(seed).permutation(len(sentences))
    if max_sentences is not None:
        order = order[:max_sentences]
    rows = np.full((len(order), seq_len), pad_id, dtype=np.int64)
    for start in range(0, len(order), 4096):
        batch = [sentences[i] for i in order[start:start + 4096]]
        for r, ids in enumerate(tokenizer(batch, add_special_tokens=False)["input_ids"], start):
            ids = ids[: seq_len - 2]
            rows[r, 0], rows[r, 1:len(ids) + 1], rows[r, len(ids) + 1] = cls_id, ids, sep_id
    n_held = heldout_count(len(rows), heldout_fraction)
    return Corpus(train=torch.from_numpy(rows[n_held:].copy()), heldout=torch.from_numpy(rows[:n_held].copy()),
                  seq_len=seq_len, sources=tuple(sources), replaced_bytes=replaced, pad_id=int(pad_id))


def attention_mask(rows: Any, pad_id: int | None) -> Any:
    """(B, L) mask of real tokens of sentence rows (all ones for packed blocks, ``pad_id`` None). [CLS] is never
    the pad id, so a row is never empty."""
    import torch

    if pad_id is None:
        return torch.ones_like(rows)
    mask = (rows != pad_id).long()
    mask[:, 0] = 1
    return mask


def trim(rows: Any, pad_id: int | None) -> Any:
    """Sentence rows without the columns that are padding in every row (a batch costs its longest sentence)."""
    if pad_id is None:
        return rows
    used = int(attention_mask(rows, pad_id).sum(1).max())
    return rows[:, :used]
