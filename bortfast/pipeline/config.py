"""Settings of :func:`bortfast.pipeline.run` (also ``bortfast run``'s options): the run's own and one config per
stage (:class:`SearchStage`, :class:`DistillStage`, :class:`FinetuneStage`, :class:`ExportStage`, :class:`BenchStage`,
:class:`QualityStage`), the stage order and the files a run owns."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from bortfast.distill.config import DistillConfig, resolve_unit
from bortfast.search.config import SearchConfig

STATE_NAME = "pipeline.json"
STAGES = ("corpus", "search", "distill", "finetune", "export", "bench", "quality", "summary")
# Every top-level entry a run writes into its out_dir: --overwrite removes these and nothing else.
RUN_OUTPUTS = ("corpus", "search", "distill", "student", "finetuned", "work", "search.json", "pareto.png",
               "model.onnx", "model.int8.onnx", "speedup.json", "speedup.png", "summary.md", "quality.json",
               "quality.png")


class StageError(RuntimeError):
    """A pipeline stage failed; the message names the stage and the run directory to re-run in."""


def _positive_ints(obj: Any, names: tuple[str, ...], prefix: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"RunConfig.{prefix}{name} must be a positive int, got {value!r}")


def _per_layer_hidden(values: Any) -> tuple[int, ...]:
    values = (values,) if isinstance(values, (int, np.integer, str)) else tuple(values)
    if any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in values):
        raise ValueError(f"RunConfig.per_layer_hidden must be positive ints (hidden sizes), got {list(values)!r}")
    return tuple(int(h) for h in values)


@dataclass
class SearchStage:
    """Algorithm 1 in the pipeline: which ξ are trained, how, and how ξ* is chosen."""

    space: Literal["below-teacher", "bert-paper"] = "below-teacher"  # search space Ξ
    eps: int = SearchConfig.eps  # ε of Algorithm 1: one trained pivot every eps architectures (by parameter count)
    steps: int = SearchConfig.steps  # short-training steps per pivot
    lrs: tuple[float, ...] = field(default=tuple(t["lr"] for t in SearchConfig.thetas), metadata={
        "flag": "lr", "help": "Θ: learning rates of the short trainings"})
    latency: Literal["kernel", "flops"] = SearchConfig.latency  # î proxy: FLOPs, or the C++ kernel's latency here
    train_batch_size: int = field(default=8, metadata={"dest": "search_batch_size"})  # sequences per short training
    max_latency: float | None = field(default=None, metadata={
        "flag": "max-latency-ms", "help": "ξ* = the lowest ê with î within this budget (ms with --latency kernel, "
                                          "FLOPs with flops)"})
    min_speedup: float | None = 5.0  # ξ* = the lowest ê among ξ at least this many times faster than T (by î)
    by_w: bool = field(default=False, metadata={
        "help": "choose ξ* by W's argmax, the paper's rule (it lands among the smallest ξ), instead of the speed "
                "budget --min-speedup"})
    max_error: float | None = None  # quality floor as a ceiling on ê: ξ* = the fastest ξ within it
    engine_check: bool = field(default=True, metadata={
        "help": "trust î alone for --min-speedup / --max-latency-ms (default: the finalists are also timed against "
                "the teacher in ONNX Runtime fp32 and must meet the budget there)"})
    per_layer: bool = field(default=False, metadata={
        "help": "search per-layer widths: Ξ is the knapsack frontier of per-layer head counts and FFN widths (cut "
                "at a FLOPs budget: --min-speedup, or --max-latency-ms with --latency flops), not --space"})
    per_layer_hidden: tuple[int, ...] = field(default=(), metadata={
        "help": "hidden sizes of the per-layer space (none given: the teacher's, 3/4 and 1/2 of it)"})
    per_layer_points: int = 24  # frontier points kept per hidden size (evenly spaced), before the ε pivots

    def __post_init__(self) -> None:
        self.lrs = tuple(float(x) for x in self.lrs)
        self.per_layer_hidden = _per_layer_hidden(self.per_layer_hidden)
        if self.space not in ("below-teacher", "bert-paper"):
            raise ValueError(f"space must be 'below-teacher' or 'bert-paper', got {self.space!r}")
        if self.latency not in ("kernel", "flops"):
            raise ValueError(f"latency must be 'kernel' or 'flops', got {self.latency!r}")
        _positive_ints(self, ("eps", "steps", "per_layer_points"), "")
        v = self.train_batch_size
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"RunConfig.search_batch_size must be a positive int, got {v!r}")
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"RunConfig.lrs must be positive learning rates, got {self.lrs!r}")


@dataclass
class DistillStage:
    """The final distillation of ξ* from the teacher."""

    steps: int = 300  # optimiser steps of the final distillation
    batch_size: int | None = None  # sequences per step (None: 16 blocks, or 64 sentences)
    seq_len: int | None = None  # tokens per block of the final distillation (None: --seq-len)
    lr: float | None = None  # peak learning rate (None: 5e-4 on blocks, 3e-4 on sentences)
    unit: Literal["auto", "blocks", "sentences"] = field(default="auto", metadata={
        "help": "training rows: packed blocks, or one corpus sentence each (pooled cosine + in-batch relation to "
                "the teacher's sentence embedding); auto: sentences for an encoder-only teacher, blocks for a "
                "masked LM"})
    beta: float | None = None  # token-level KD weight (None: 0.5 on blocks, alexa/bort's; 0 on sentences)
    embedding_loss: float | None = None  # γ, the sentence-level terms' weight (None: 1 on sentences, 0 on blocks)

    # The recipe of each unit where batch_size / lr are None: the blocks recipe is alexa/bort's as this pipeline
    # tuned it; the sentence recipe was chosen on the selection split (docs/results/general-distillation.md).
    RECIPES: ClassVar[dict[str, dict[str, float]]] = {"blocks": {"batch_size": 16, "lr": 5e-4},
                                                      "sentences": DistillConfig.RECIPES["sentences"]}

    def resolved(self, kind: str) -> dict[str, Any]:
        """DistillConfig's settings for a teacher of ``kind`` ("mlm" or "hidden"): "auto" and None resolved."""
        unit = resolve_unit(self.unit, kind)
        recipe = self.RECIPES[unit]
        return {**dataclasses.asdict(self), "unit": unit,
                "batch_size": recipe["batch_size"] if self.batch_size is None else self.batch_size,
                "lr": recipe["lr"] if self.lr is None else self.lr}

    def __post_init__(self) -> None:
        _positive_ints(self, ("steps",) if self.batch_size is None else ("steps", "batch_size"), "distill_")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"RunConfig.distill_lr must be positive or None, got {self.lr!r}")
        if self.unit not in ("auto", "blocks", "sentences"):
            raise ValueError(f"RunConfig.distill_unit must be 'auto', 'blocks' or 'sentences', got {self.unit!r}")
        for name in ("beta", "embedding_loss"):  # None: the unit's recipe (DistillConfig.loss_weights_for)
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ValueError(f"RunConfig.distill_{name} must be >= 0 or None, got {v!r}")
        dsl = self.seq_len
        if dsl is not None and (isinstance(dsl, bool) or not isinstance(dsl, int) or dsl < 8):
            raise ValueError(f"RunConfig.distill_seq_len must be an int >= 8 or None, got {self.seq_len!r}")


@dataclass
class FinetuneStage:
    """The optional fine-tuning of the student on a task (distillation on it when the teacher is fine-tuned)."""

    task: str | None = field(default=None, metadata={"dest": "task"})  # a task to fine-tune on, e.g. sst2
    task_data: str | None = field(default=None, metadata={"dest": "task_data"})  # the task's data directory (GLUE TSVs)
    epochs: int = 3  # fine-tuning epochs (the best one is kept, chosen on the held-out part of train)
    max_train: int | None = None  # training examples used (None: all)
    lr: float = 1e-4  # fine-tuning learning rate
    heldout_fraction: float = 0.1  # share of train held out to choose the epoch on (dev is only reported)

    def __post_init__(self) -> None:
        _positive_ints(self, ("epochs",), "finetune_")
        if (self.task is None) != (self.task_data is None):
            raise ValueError(f"--task and --task-data go together (got task={self.task!r}, "
                             f"task_data={self.task_data!r})")


@dataclass
class ExportStage:
    """The deployed files: the student directory's modules and its ONNX exports."""

    teacher_space: bool = field(default=False, metadata={
        "help": "ship the student's learned projection into the teacher's space as a sentence-transformers Dense "
                "module (student/2_Dense), so SentenceTransformer(student) and model.onnx emit teacher-width vectors "
                "that search an index built with the teacher (default: the student's own width)"})


@dataclass
class BenchStage:
    """The end-to-end timing of the deployed student against the teacher."""

    rounds: int = 5  # interleaved timing rounds
    sentences: int = 256  # held-out sentences for the end-to-end timing and the quality check

    def __post_init__(self) -> None:
        _positive_ints(self, ("rounds", "sentences"), "bench_")


@dataclass
class QualityStage:
    """How much of the teacher the student keeps."""

    sts: str | None = field(default=None, metadata={
        "metavar": "TSV", "help": "STS-B style TSV (sentence1, sentence2, score): STS Spearman of the teacher, ξ* and "
                                  "the pivots"})
    references: bool = field(default=True, metadata={
        "help": "skip the reference points (the teacher in INT8 and cut to its first k layers with no training, "
                "each scored on the report data and timed in ONNX Runtime fp32 B=1 against the teacher)"})

    def __post_init__(self) -> None:
        if self.sts is not None:
            self.sts = os.fspath(self.sts)
            if not Path(self.sts).is_file():
                raise FileNotFoundError(f"--sts file {self.sts!r} does not exist")


# RunConfig's stage fields and their config classes, in pipeline order; the prefix of their flat names (the flags of
# `bortfast run` and the keys of pipeline.json's settings).
STAGE_CONFIGS: dict[str, tuple[type, str]] = {
    "search": (SearchStage, ""), "distill": (DistillStage, "distill_"), "finetune": (FinetuneStage, "finetune_"),
    "export": (ExportStage, ""), "bench": (BenchStage, "bench_"), "quality": (QualityStage, ""),
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """flat setting name (``distill_steps``: a ``bortfast run`` option and a key of :meth:`RunConfig.identity`) →
    (stage, field)."""
    names = {}
    for stage, (cls, prefix) in STAGE_CONFIGS.items():
        for f in dataclasses.fields(cls):
            names[f.metadata.get("dest", prefix + f.name)] = (stage, f.name)
    return names


FLAT_NAMES = _flat_names()
# SearchStage's per-layer settings: in a run's identity only when per_layer is on.
PER_LAYER_SETTINGS = ("per_layer", "per_layer_hidden", "per_layer_points")
# Settings added after runs existed: in a run's identity only away from their default, so an older run resumes.
LATER_SETTINGS = {"teacher_space": False, "references": True}


@dataclass
class RunConfig:
    """Settings of :func:`run` (also the options of ``bortfast run``): the run's own and one config per stage.

    ``RunConfig(teacher=..., out_dir=..., search=SearchStage(eps=8), distill=DistillStage(steps=100))``: each
    stage's settings are its own config class (:data:`STAGE_CONFIGS`), read back as ``cfg.search.eps``. The flat
    names of ``bortfast run``'s options (``eps``, ``distill_steps``) name the settings in ``pipeline.json``
    (:meth:`identity`) and on the command line; :meth:`from_flat` still builds a config from them, with a
    deprecation warning, until 0.2.
    """

    teacher: str  # local transformers directory or hub id
    out_dir: str = field(metadata={"flag": "out", "metavar": "OUT"})  # the report directory (re-run to resume)
    corpus: list[str] = field(default_factory=list)  # text files / dirs / hf:NAME (empty: the stdlib docstrings)
    seq_len: int = 128  # latency shape L, the search's training blocks, export, timing and quality
    max_blocks: int | None = 2000  # corpus blocks used (None: all)
    threads: int = field(default=2, metadata={  # CPU threads
        "help": "the run's thread budget: the latency kernel's threads and the torch / ONNX Runtime intra-op "
                "threads of the engine check, export and bench (trainings use torch's default)"})
    seed: int = 0  # seeds every student, the data split and the masking
    init: Literal["inherit", "random"] = "inherit"  # students cut out of the teacher (random: the paper's setting)
    overwrite: bool = False  # discard a previous run in --out
    progress: bool = field(default=True, metadata={"help": "no progress bars / stage messages"})
    keep_intermediate: bool = field(default=False, metadata={
        "help": "keep work/ (encoder copies, ONNX timing files) and the distillation checkpoints after a finished "
                "run (default: only the deliverables and the logs stay)"})
    until: Literal["corpus", "search", "distill", "finetune", "export", "bench", "quality", "summary"] | None = field(
        default=None, metadata={"help": "stop after this stage (a later run without it resumes from there)"})
    search: SearchStage = field(default_factory=SearchStage, metadata={"cli": False})
    distill: DistillStage = field(default_factory=DistillStage, metadata={"cli": False})
    finetune: FinetuneStage = field(default_factory=FinetuneStage, metadata={"cli": False})
    export: ExportStage = field(default_factory=ExportStage, metadata={"cli": False})
    bench: BenchStage = field(default_factory=BenchStage, metadata={"cli": False})
    quality: QualityStage = field(default_factory=QualityStage, metadata={"cli": False})

    def __post_init__(self) -> None:
        self.corpus = [os.fspath(c) for c in ([self.corpus] if isinstance(self.corpus, (str, os.PathLike))
                                              else self.corpus)]
        self.teacher, self.out_dir = os.fspath(self.teacher), os.fspath(self.out_dir)
        for stage, (cls, _) in STAGE_CONFIGS.items():
            if not isinstance(getattr(self, stage), cls):
                raise ValueError(f"RunConfig.{stage} must be a {cls.__name__}, got {getattr(self, stage)!r}")
        _positive_ints(self, ("seq_len", "threads"), "")
        if self.until is not None and self.until not in STAGES:
            raise ValueError(f"RunConfig.until must be one of {list(STAGES)} or None, got {self.until!r}")
        if self.init not in ("inherit", "random"):
            raise ValueError(f"RunConfig.init must be 'inherit' or 'random', got {self.init!r}")
        if self.search.per_layer and self.finetune.task is not None:
            raise ValueError(f"--task {self.finetune.task!r} with --per-layer: fine-tuning a per-layer student is "
                             f"not supported yet; run without --task and fine-tune a uniform ξ, or drop --per-layer")

    @classmethod
    def from_flat(cls, teacher: str | os.PathLike, out_dir: str | os.PathLike, corpus: Any = (),
                  **settings: Any) -> RunConfig:
        """Deprecated, removed in 0.2: a RunConfig from the flat names of ``bortfast run``'s options
        (``RunConfig.from_flat(teacher=..., out_dir=..., eps=8, distill_steps=100)``), as ``RunConfig(...)``
        took them before. Give each stage its own config instead:
        ``RunConfig(teacher=..., out_dir=..., search=SearchStage(eps=8), distill=DistillStage(steps=100))``.
        Settings that are RunConfig's own fields pass through; a stage given both ways is refused."""
        flat = {k: settings.pop(k) for k in list(settings) if k in FLAT_NAMES}
        warnings.warn(f"RunConfig.from_flat({', '.join(f'{k}=' for k in flat)}) is deprecated and goes in bortfast "
                      f"0.2: pass the stage configs (search=SearchStage(...), distill=DistillStage(...), ...)",
                      DeprecationWarning, stacklevel=2)
        for stage, (stage_cls, _) in STAGE_CONFIGS.items():
            mine = {FLAT_NAMES[k][1]: v for k, v in flat.items() if FLAT_NAMES[k][0] == stage}
            if mine and stage in settings:
                raise ValueError(f"RunConfig got {stage}= and the flat settings {sorted(mine)} of that stage: give "
                                 f"the stage's settings one way")
            if mine:
                settings[stage] = stage_cls(**mine)
        return cls(teacher=teacher, out_dir=out_dir, corpus=corpus, **settings)

    def identity(self) -> dict[str, Any]:
        """The settings that define the run's results (a re-run must match them to resume), by flat name. The
        per-layer settings count only with ``per_layer`` on (a uniform run's identity is what it was before them), the
        :data:`LATER_SETTINGS` only away from their defaults."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in STAGE_CONFIGS
             and f.name not in ("overwrite", "progress", "out_dir", "until", "keep_intermediate")}
        d.update({name: getattr(getattr(self, stage), key) for name, (stage, key) in FLAT_NAMES.items()
                  if (self.search.per_layer or name not in PER_LAYER_SETTINGS)
                  and (name not in LATER_SETTINGS or getattr(getattr(self, stage), key) != LATER_SETTINGS[name])})
        return json.loads(json.dumps(d))  # tuples as lists, as pipeline.json holds them


