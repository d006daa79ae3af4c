"""The one place search meets distillation: :func:`extract` loads the teacher and corpus, builds the space, and
runs the search (:func:`bortfast.search.runner.run_search`) with ê = :func:`bortfast.distill.short_train_error`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bortfast.data.corpus import Corpus, load_corpus, read_exclude_file
from bortfast.data.teacher import Teacher, load_teacher
from bortfast.distill.inherit import check_fits
from bortfast.distill.short import short_train_error
from bortfast.distill.student import teacher_importance
from bortfast.search.algorithm import SearchResult
from bortfast.search.choice import ChoiceCheck
from bortfast.search.config import ErrorFn, SearchConfig
from bortfast.search.journal import ERROR_DEFINITION_VERSION
from bortfast.search.runner import run_search
from bortfast.space import Arch, SearchSpace


def extract(
    teacher: Any,
    corpus: Any,
    space: SearchSpace | Sequence[Arch] | str = "below-teacher",
    *,
    out_dir: str | os.PathLike | None = None,
    config: SearchConfig | None = None,
    error_fn: ErrorFn | None = None,
    check: ChoiceCheck | None = None,
    **overrides: Any,
) -> SearchResult:
    """Run Algorithm 1 for a teacher on a corpus and return (and, given ``out_dir``, save) the result.

    ``teacher``: a directory / hub id (loaded with :func:`bortfast.distill.load_teacher`) or a loaded ``Teacher``.
    ``corpus``: text file(s) / directories / ``hf:`` names (:func:`bortfast.distill.load_corpus`) or a ``Corpus``.
    ``space``: a :class:`SearchSpace`, a list of :class:`Arch`, or ``"below-teacher"`` / ``"bert-paper"`` (a preset
    takes the teacher's vocabulary). Settings come from ``config`` and keyword overrides of its fields (``eps``,
    ``steps``, ``thetas``, ``latency``, ``batch``, ``seq_len``, ``seed``, ...). ``error_fn`` replaces the short
    distillation (tests, science checks); by default ê = :func:`bortfast.distill.short_train_error`. ``check``
    re-measures the finalists of a latency budget in the deployment engine (:func:`bortfast.search.choose_for_user`).

    Under an initialised ``torch.distributed`` process group the trainings are split across ranks; every rank
    returns the full result and rank 0 writes ``search.json``, ``pareto.png`` and prints the top-10 table.
    """

    cfg = dataclasses.replace(config or SearchConfig(), **overrides)
    if teacher is None or (isinstance(teacher, (str, os.PathLike)) and not str(teacher)):
        raise ValueError("a teacher (directory or hub id) is required")
    if corpus is None or (isinstance(corpus, (str, os.PathLike, list, tuple)) and not corpus):
        raise ValueError("a corpus (text files, directories or hf: dataset names) is required")
    t = teacher if isinstance(teacher, Teacher) else load_teacher(teacher)
    if cfg.seq_len > t.max_seq_len:
        raise ValueError(f"seq_len={cfg.seq_len} exceeds the teacher's max sequence length {t.max_seq_len}")
    if isinstance(corpus, Corpus):
        c = corpus
        if c.seq_len != cfg.seq_len:
            raise ValueError(f"the corpus has seq_len={c.seq_len} but the search uses seq_len={cfg.seq_len}")
    else:
        paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
        for path in paths:
            if not str(path).startswith("hf:") and not Path(path).exists():
                raise FileNotFoundError(f"corpus path {str(path)!r} does not exist")
        c = load_corpus(paths, t.tokenizer, seq_len=cfg.seq_len, seed=cfg.seed, max_blocks=cfg.max_blocks,
                        exclude=read_exclude_file(cfg.exclude_file))

    archs = _space_archs(space, t)
    settings = {
        "teacher": str(getattr(t, "name", teacher)),
        "teacher_arch": list(t.arch.tuple),
        "teacher_kind": t.kind,
        "vocab_fingerprint": t.vocab_fingerprint,
        "corpus": list(c.sources),
        "corpus_fingerprint": c.fingerprint,
        "space": space if isinstance(space, str) else getattr(space, "name", "custom"),
        "space_size": len(archs),
        "steps": cfg.steps,
        "latency": cfg.latency,
        "batch": cfg.batch,
        "seq_len": cfg.seq_len,
        "train_batch_size": cfg.train_batch_size,
        "heldout_batch_size": cfg.heldout_batch_size,
        "seed": cfg.seed,
        "param_kind": cfg.param_kind,
        "error_fn": "short_train_error" if error_fn is None else getattr(error_fn, "__name__", "custom"),
        "error_definition": _error_definition(cfg) if error_fn is None else None,
    }
    if error_fn is None:
        error_fn = _short_train_error_fn(t, c, archs, cfg, out_dir)

    return run_search(archs, t.arch, error_fn, cfg, settings, out_dir=out_dir, check=check)


def _error_definition(cfg: SearchConfig) -> str:
    from bortfast._base.version import __version__

    init = f"inherit:{cfg.layers}:{cfg.calibration_blocks}" if cfg.init == "inherit" else "random"
    return f"bortfast {__version__} ê v{ERROR_DEFINITION_VERSION} {init}"


def _short_train_error_fn(t: Teacher, c: Corpus, archs: Sequence[Arch], cfg: SearchConfig,
                          out_dir: str | os.PathLike | None) -> ErrorFn:
    """ê = :func:`bortfast.distill.short_train_error`; inherited students share one importance measurement
    (cached in ``out_dir``)."""
    importance = None
    if cfg.init == "inherit":
        for arch in archs:  # every ξ must fit inside T before anything slow runs
            check_fits(arch, t.config)
        importance = teacher_importance(t, c, out_dir, n_blocks=cfg.calibration_blocks, progress=cfg.progress)

    def error_fn(arch: Arch, theta: Mapping[str, Any]) -> float:
        return short_train_error(arch, t, c, steps=cfg.steps, batch_size=cfg.train_batch_size, seed=cfg.seed,
                                 heldout_batch_size=cfg.heldout_batch_size, init=cfg.init, importance=importance,
                                 layers=cfg.layers, **theta)

    return error_fn


def _space_archs(space: SearchSpace | Sequence[Arch] | str, teacher: Any) -> list[Arch]:
    T = teacher.arch
    if isinstance(space, str):
        if space == "below-teacher":
            space = SearchSpace.below(teacher.config)
        elif space == "bert-paper":
            space = dataclasses.replace(SearchSpace.bert_paper(), vocab_size=T.vocab_size,
                                        max_positions=T.max_positions, type_vocab_size=T.type_vocab_size)
        else:
            raise ValueError(f"space must be 'below-teacher', 'bert-paper' or a SearchSpace, got {space!r}")
    archs = list(space)
    if not archs:
        raise ValueError("the search space is empty")
    for a in archs:
        if not isinstance(a, Arch):
            raise TypeError(f"the search space must hold Arch objects, got {a!r}")
        for name in ("vocab_size", "max_positions", "type_vocab_size"):
            if getattr(a, name) != getattr(T, name):
                raise ValueError(
                    f"search-space architecture {a} has {name}={getattr(a, name)} but the teacher has "
                    f"{name}={getattr(T, name)}; the space must use the teacher's vocabulary"
                )
    return archs
