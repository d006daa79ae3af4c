"""Corpus loading: text files, directories or ``hf:`` datasets, tokenized and packed into blocks.

Text policy: files are decoded as UTF-8 (a leading BOM is dropped). Invalid bytes are replaced by U+FFFD and
a :class:`CorpusDecodeWarning` says how many bytes in which file (``errors="replace"``, the default); with
``errors="strict"`` the first invalid byte raises a ``ValueError`` naming the file and its byte offset.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bortfast._base.checks import check_int

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch




class CorpusDecodeWarning(UserWarning):
    """A corpus file held bytes that are not valid UTF-8; they were replaced by U+FFFD."""


# --------------------------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True, eq=False)
class Corpus:
    """Token blocks of length ``seq_len`` ([CLS] ... [SEP]), split into train and held-out at random; or, with
    ``pad_id`` set, one sentence per row (:func:`bortfast.data.sentences.load_sentences`)."""

    train: torch.Tensor  # (n_train, seq_len) int64
    heldout: torch.Tensor  # (n_heldout, seq_len) int64
    seq_len: int
    sources: tuple[str, ...]  # the files (or dataset) the text came from
    replaced_bytes: int  # invalid UTF-8 bytes replaced by U+FFFD
    pad_id: int | None = None  # None: packed blocks; else one sentence per row, padded with this id (data.sentences)

    @property
    def fingerprint(self) -> str:
        """sha256 of the train and held-out blocks: resuming on different data is refused."""
        h = hashlib.sha256()
        h.update(self.train.numpy().tobytes())
        h.update(b"|")
        h.update(self.heldout.numpy().tobytes())
        return h.hexdigest()[:16]


def _decode(raw: bytes, path: Path, errors: str) -> tuple[str, int]:
    try:
        return raw.decode("utf-8-sig"), 0
    except UnicodeDecodeError as err:
        if errors == "strict":
            raise ValueError(
                f"corpus file {str(path)!r} is not valid UTF-8: byte 0x{raw[err.start]:02x} at offset {err.start} "
                f"({err.reason}); pass errors='replace' to replace invalid bytes"
            ) from None
        first = err.start
    text = raw.decode("utf-8-sig", errors="replace")
    # surrogateescape maps each invalid byte to one lone surrogate U+DC80..U+DCFF: counting them counts the bytes
    # that "replace" covered, with no error handler of our own registered process-wide.
    escaped = raw.decode("utf-8-sig", errors="surrogateescape")
    n_bad = sum(1 for ch in escaped if "\udc80" <= ch <= "\udcff")
    warnings.warn(
        f"corpus file {str(path)!r}: {n_bad} byte(s) are not valid UTF-8 (first at offset {first}); "
        f"replaced by U+FFFD", CorpusDecodeWarning, stacklevel=3,
    )
    return text, n_bad


def _corpus_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file()
                           and not any(part.startswith(".") for part in f.relative_to(path).parts))
            if not found:
                raise ValueError(f"corpus directory {str(path)!r} holds no files")
            files.extend(found)
        else:
            raise FileNotFoundError(f"corpus path {str(p)!r} does not exist (a datasets name needs the 'hf:' prefix)")
    return files


def _dataset_texts(spec: str) -> Iterable[str]:
    """``hf:NAME[:CONFIG[:SPLIT]]`` → the ``text`` column of a Hugging Face dataset (needs network and the
    optional ``datasets`` package), e.g. ``hf:wikitext:wikitext-2-raw-v1:train``."""
    name, subset, split = (spec[3:].split(":") + ["", ""])[:3]
    try:
        import datasets
    except ImportError:
        raise ValueError(f"corpus {spec!r} names a Hugging Face dataset, but the 'datasets' package is not "
                         f"installed (pip install datasets)") from None
    try:
        ds = datasets.load_dataset(name, subset or None, split=split or "train")
    except (OSError, ConnectionError) as err:
        raise OSError(f"cannot load dataset {name!r} from the Hugging Face hub (unreachable offline?): {err}") from None
    column = "text" if "text" in ds.column_names else ds.column_names[0]
    return (str(t) for t in ds[column])


def checked_corpus_args(caller: str, paths: str | os.PathLike | Sequence[str | os.PathLike], seq_len: int,
                        heldout_fraction: float, errors: str) -> list:
    """``paths`` as a non-empty list, once ``seq_len``, ``heldout_fraction`` and ``errors`` are checked (the
    arguments :func:`load_corpus` and :func:`bortfast.data.sentences.load_sentences` share)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError(f"{caller} needs at least one path")
    check_int("seq_len", seq_len, 8)
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}")
    if errors not in ("replace", "strict"):
        raise ValueError(f"errors must be 'replace' or 'strict', got {errors!r}")
    return paths


def heldout_count(n: int, heldout_fraction: float) -> int:
    """How many of ``n`` shuffled rows are held out: ``ceil(heldout_fraction * n)``, at least one, never all."""
    return min(n - 1, max(1, math.ceil(heldout_fraction * n)))


def load_corpus(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    tokenizer: Any,
    *,
    seq_len: int,
    heldout_fraction: float = 0.05,
    seed: int = 0,
    errors: Literal["replace", "strict"] = "replace",
    max_blocks: int | None = None,
    exclude: Collection[str] | None = None,
) -> Corpus:
    """Tokenize text files / directories of text files / ``hf:`` datasets and pack them into blocks.

    ``exclude``: lines (compared stripped) that never enter a block — text held out for quality checks.

    Each non-empty line is tokenized without special tokens; the token stream (a separator between files) is cut
    into chunks of ``seq_len - 2`` wrapped in [CLS] ... [SEP] (the remainder is dropped). Blocks are shuffled with
    ``seed`` and ``ceil(heldout_fraction * n)`` (at least one) go to ``heldout``. ``max_blocks`` keeps only the
    first blocks (after shuffling) for quick runs.
    """
    import torch

    paths = checked_corpus_args("load_corpus", paths, seq_len, heldout_fraction, errors)
    cls_id, sep_id = _block_ids(tokenizer)

    sources, texts, replaced = _read_texts(paths, errors)
    if exclude:
        held = {ln.strip() for ln in exclude}
        texts = [(name, [ln for ln in lines if ln.strip() not in held]) for name, lines in texts]
    names = ", ".join(repr(p) for p in map(str, paths))
    stream = _token_stream(texts, tokenizer, sep_id, names)
    blocks = _pack_blocks(stream, seq_len, cls_id, sep_id, names)  # (n, L)
    order = np.random.default_rng(seed).permutation(len(blocks))
    if max_blocks is not None:
        order = order[: max(2, int(max_blocks))]
    n_held = heldout_count(len(order), heldout_fraction)
    heldout = torch.from_numpy(blocks[np.sort(order[:n_held])].copy())
    train = torch.from_numpy(blocks[order[n_held:]].copy())
    return Corpus(train=train, heldout=heldout, seq_len=seq_len, sources=tuple(sources), replaced_bytes=replaced)


def _block_ids(tokenizer: Any) -> tuple[int, int]:
    """The ids that open and close a block: [CLS]/[SEP] (BERT) or <s>/</s> (RoBERTa)."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no [CLS]/<s> or [SEP]/</s> token")
    return cls_id, sep_id


def _read_texts(paths: list, errors: str) -> tuple[list[str], list[tuple[str, list[str]]], int]:
    """(sources, (source, non-blank lines) per file or dataset, invalid UTF-8 bytes replaced)."""
    sources: list[str] = []
    texts: list[tuple[str, list[str]]] = []
    replaced = 0
    hf_specs = [str(p) for p in paths if isinstance(p, str) and p.startswith("hf:")]
    file_paths = [p for p in paths if not (isinstance(p, str) and p.startswith("hf:"))]
    for path in _corpus_files(file_paths):
        text, bad = _decode(path.read_bytes(), path, errors)
        replaced += bad
        sources.append(str(path))
        texts.append((str(path), [ln for ln in text.splitlines() if ln.strip()]))
    for spec in hf_specs:
        sources.append(spec)
        texts.append((spec, [ln for t in _dataset_texts(spec) for ln in t.splitlines() if ln.strip()]))
    return sources, texts, replaced


def _token_stream(texts: list[tuple[str, list[str]]], tokenizer: Any, sep_id: int, names: str) -> list[int]:
    """Every line's tokens in order, ``sep_id`` after each document; refused when empty or mostly unknown."""
    stream: list[int] = []
    for _, lines in texts:
        if not lines:
            continue
        for start in range(0, len(lines), 4096):
            for ids in tokenizer(lines[start:start + 4096], add_special_tokens=False)["input_ids"]:
                stream.extend(ids)
        stream.append(sep_id)  # document boundary
    if not any(lines for _, lines in texts) or len(stream) <= len(texts):
        raise ValueError(f"corpus {names} is empty (no non-blank text)")
    unk_id = tokenizer.unk_token_id
    if unk_id is not None:
        n_unk = stream.count(unk_id)
        if n_unk > 0.5 * len(stream):
            raise ValueError(
                f"corpus {names}: the tokenizer ({len(tokenizer)} tokens) maps {n_unk} of {len(stream)} tokens "
                f"({100 * n_unk / len(stream):.0f}%) to {tokenizer.unk_token}; wrong tokenizer or vocabulary?"
            )
    return stream


def _pack_blocks(stream: list[int], seq_len: int, cls_id: int, sep_id: int, names: str) -> np.ndarray:
    """The stream cut into chunks of ``seq_len - 2`` tokens, each wrapped in ``cls_id`` ... ``sep_id``."""
    chunk = seq_len - 2
    n_blocks = len(stream) // chunk
    if n_blocks < 2:
        raise ValueError(
            f"corpus {names} has {len(stream)} tokens: fewer than two blocks of seq_len={seq_len} "
            f"(one for training, one held out)"
        )
    body = np.asarray(stream[: n_blocks * chunk], dtype=np.int64).reshape(n_blocks, chunk)  # (n, L-2)
    blocks = np.empty((n_blocks, seq_len), dtype=np.int64)  # (n, L)
    blocks[:, 0] = cls_id
    blocks[:, 1:-1] = body
    blocks[:, -1] = sep_id
    return blocks


def read_exclude_file(path: str | os.PathLike | None) -> list[str] | None:
    """The lines of a held-out text file (``exclude=`` of :func:`load_corpus`), or None."""
    if path is None:
        return None
    return [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
