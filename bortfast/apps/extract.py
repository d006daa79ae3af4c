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
from bortfast.data.sentences import load_sentences
from bortfast.data.teacher import Teacher, load_teacher
from bortfast.distill.config import default_loss_weights, resolve_unit
from bortfast.distill.inherit import check_fits
from bortfast.distill.perlayer import check_fits_per_layer
from bortfast.distill.short import short_train_error
from bortfast.distill.student import teacher_importance
from bortfast.search.algorithm import SearchResult
from bortfast.search.choice import ChoiceCheck
from bortfast.search.config import ErrorFn, SearchConfig
from bortfast.search.journal import ERROR_DEFINITION_VERSION
from bortfast.search.perlayer import per_layer_space
from bortfast.search.runner import run_search
from bortfast.space import Arch, PerLayerArch, SearchSpace


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
    unit = resolve_unit(cfg.unit, t.kind)
    c, blocks = _corpora(corpus, t, cfg, unit)

    teacher_layers: list | None = None
    if cfg.per_layer:  # Ξ = the knapsack frontier over the teacher's importance (needs it even for init=random)
        archs, teacher_layers = _per_layer_archs(t, blocks, cfg, out_dir)
    else:
        archs = _space_archs(space, t)
    settings = {
        "teacher": str(getattr(t, "name", teacher)),
        "teacher_arch": list(t.arch.tuple),
        "teacher_kind": t.kind,
        "vocab_fingerprint": t.vocab_fingerprint,
        "corpus": list(c.sources),
        "corpus_fingerprint": c.fingerprint,
        "space": "per-layer frontier" if cfg.per_layer else space if isinstance(space, str) else getattr(
            space, "name", "custom"),
        **({"per_layer": {"hidden": _per_layer_hidden(t, cfg), "points": cfg.per_layer_points,
                          "delta": cfg.per_layer_delta}} if cfg.per_layer else {}),
        "space_size": len(archs),
        "steps": cfg.steps,
        "unit": unit,
        "latency": cfg.latency,
        "batch": cfg.batch,
        "seq_len": cfg.seq_len,
        "train_batch_size": cfg.train_batch_size,
        "heldout_batch_size": cfg.heldout_batch_size,
        "seed": cfg.seed,
        "param_kind": cfg.param_kind,
        "error_fn": "short_train_error" if error_fn is None else getattr(error_fn, "__name__", "custom"),
        "error_definition": _error_definition(cfg, unit) if error_fn is None else None,
    }
    if error_fn is None:
        error_fn = _short_train_error_fn(t, c, blocks, archs, cfg, out_dir, teacher_layers)

    return run_search(archs, t.arch, error_fn, cfg, settings, out_dir=out_dir, teacher_layers=teacher_layers,
                      check=check)


def _corpora(corpus: Any, t: Teacher, cfg: SearchConfig, unit: str) -> tuple[Corpus, Corpus]:
    """(what the short trainings learn from, packed blocks of the same text for the importance calibration)."""
    if isinstance(corpus, Corpus):
        if corpus.seq_len != cfg.seq_len:
            raise ValueError(f"the corpus has seq_len={corpus.seq_len} but the search uses seq_len={cfg.seq_len}")
        if (corpus.pad_id is not None) != (unit == "sentences"):
            raise ValueError(f"the Corpus given holds {'sentence rows' if corpus.pad_id is not None else 'blocks'} "
                             f"but the search's unit is {unit!r}: pass the corpus as paths, or set unit to match")
        if corpus.pad_id is not None and (cfg.init == "inherit" or cfg.per_layer):
            raise ValueError("a Corpus of sentence rows cannot calibrate the teacher's importance (it needs packed "
                             "blocks): pass the corpus as paths")
        return corpus, corpus
    paths = [corpus] if isinstance(corpus, (str, os.PathLike)) else list(corpus)
    for path in paths:
        if not str(path).startswith("hf:") and not Path(path).exists():
            raise FileNotFoundError(f"corpus path {str(path)!r} does not exist")
    exclude = read_exclude_file(cfg.exclude_file)
    blocks = load_corpus(paths, t.tokenizer, seq_len=cfg.seq_len, seed=cfg.seed, max_blocks=cfg.max_blocks,
                         exclude=exclude)
    if unit == "blocks":
        return blocks, blocks
    return load_sentences(paths, t.tokenizer, seq_len=cfg.seq_len, seed=cfg.seed, exclude=exclude), blocks


def _per_layer_hidden(t: Teacher, cfg: SearchConfig) -> list[int]:
    if cfg.per_layer_hidden:
        return list(cfg.per_layer_hidden)
    d = t.arch.head_dim
    return sorted({max(d, round(t.arch.hidden * f / d) * d) for f in (0.5, 0.75, 1.0)})


def _per_layer_archs(t: Teacher, c: Corpus, cfg: SearchConfig, out_dir: str | os.PathLike | None
                     ) -> tuple[list[PerLayerArch], list[list[int]]]:
    """The per-layer frontier points (DESIGN.md §1) and the teacher layers of each. A FLOPs budget (``latency=
    "flops"`` with ``max_latency``, or ``min_speedup`` against the teacher's FLOPs) cuts the frontier first."""
    imp = teacher_importance(t, c, out_dir, n_blocks=cfg.calibration_blocks, progress=cfg.progress)
    teacher_flops = t.arch.flops(1, cfg.seq_len)
    budget = None
    if cfg.max_latency is not None and cfg.latency == "flops":
        budget = cfg.max_latency / cfg.batch
    if cfg.min_speedup is not None:
        budget = min(budget if budget is not None else float("inf"), teacher_flops / cfg.min_speedup)
    T = t.arch
    cands = per_layer_space(imp.heads, imp.neurons, imp.layers, teacher_hidden=T.hidden, head_dim=T.head_dim,
                            hidden=_per_layer_hidden(t, cfg), vocab_size=T.vocab_size, max_positions=T.max_positions,
                            type_vocab_size=T.type_vocab_size, points=cfg.per_layer_points,
                            delta=cfg.per_layer_delta, seq_len=cfg.seq_len, max_flops=budget)
    return [x.arch for x in cands], [list(x.teacher_layers) for x in cands]


def _error_definition(cfg: SearchConfig, unit: str) -> str:
    from bortfast._base.version import __version__

    init = f"inherit:{cfg.layers}:{cfg.calibration_blocks}" if cfg.init == "inherit" else "random"
    return f"bortfast {__version__} ê v{ERROR_DEFINITION_VERSION} {init}" + (" sentences" if unit == "sentences"
                                                                              else "")


def _short_train_error_fn(t: Teacher, c: Corpus, blocks: Corpus, archs: Sequence[Arch | PerLayerArch],
                          cfg: SearchConfig, out_dir: str | os.PathLike | None,
                          teacher_layers: Sequence[Any] | None = None) -> ErrorFn:
    """ê = :func:`bortfast.distill.short_train_error` on ``c``; inherited students share one importance
    measurement on ``blocks`` (cached in ``out_dir``). A per-layer ξ is cut from its own teacher layers
    (``teacher_layers``). On sentence rows ê is the sentence recipe's loss (γ 1, β 0), as distill trains on."""
    importance = None
    layers_of = {a: list(tl) for a, tl in zip(archs, teacher_layers)} if teacher_layers is not None else {}
    if cfg.init == "inherit":
        for arch in archs:  # every ξ must fit inside T before anything slow runs
            if isinstance(arch, Arch):
                check_fits(arch, t.config)
            else:
                check_fits_per_layer(arch, t.config, layers_of.get(arch))
        importance = teacher_importance(t, blocks, out_dir, n_blocks=cfg.calibration_blocks,
                                        progress=cfg.progress)
    weights = default_loss_weights(t.kind, beta=0.0, embedding=1.0) if c.pad_id is not None else None

    def error_fn(arch: Arch | PerLayerArch, theta: Mapping[str, Any]) -> float:
        return short_train_error(arch, t, c, steps=cfg.steps, batch_size=cfg.train_batch_size, seed=cfg.seed,
                                 heldout_batch_size=cfg.heldout_batch_size, init=cfg.init, importance=importance,
                                 layers=layers_of.get(arch, cfg.layers), weights=weights, **theta)

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
