"""The whole Bort pipeline in one resumable run: search → distil ξ* → (fine-tune) → export → benchmark → report.

This is DESIGN.md §2 end to end (the Bort paper's §3-§5 in order). Each stage writes its outputs into the run
directory and is recorded in ``pipeline.json`` only when it has finished, so re-running the same command skips
finished stages; a stage interrupted half-way resumes through its own mechanism (the search journal, the
distillation checkpoints). A failure is reported with the stage's name and leaves earlier stages' outputs intact.

``bortfast demo`` is :func:`run` on the embedded default: the all-MiniLM-L6-v2 encoder that the ``demo`` extra
installs (an encoder-only teacher, so hidden-state distillation) and a corpus of the installed Python standard
library's docstrings (:mod:`bortfast.data.stdlib`); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bortfast._base.io import LOCK_FILES, atomic_dir, atomic_open, clear_own_dir, output_lock, write_json
from bortfast.search.config import SearchConfig
from bortfast.space import Arch, PerLayerArch

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
    batch_size: int = 16  # sequences per step
    seq_len: int | None = None  # tokens per block of the final distillation (None: --seq-len)
    lr: float = 5e-4  # peak learning rate

    def __post_init__(self) -> None:
        _positive_ints(self, ("steps", "batch_size"), "distill_")
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

    def __post_init__(self) -> None:
        if self.sts is not None:
            self.sts = os.fspath(self.sts)
            if not Path(self.sts).is_file():
                raise FileNotFoundError(f"--sts file {self.sts!r} does not exist")


# RunConfig's stage fields and their config classes, in pipeline order; the prefix of their flat names and flags.
STAGE_CONFIGS: dict[str, tuple[type, str]] = {
    "search": (SearchStage, ""), "distill": (DistillStage, "distill_"), "finetune": (FinetuneStage, "finetune_"),
    "bench": (BenchStage, "bench_"), "quality": (QualityStage, ""),
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """flat setting name (``distill_steps``: a ``bortfast run`` option and a RunConfig keyword) → (stage, field)."""
    names = {}
    for stage, (cls, prefix) in STAGE_CONFIGS.items():
        for f in dataclasses.fields(cls):
            names[f.metadata.get("dest", prefix + f.name)] = (stage, f.name)
    return names


FLAT_NAMES = _flat_names()
# SearchStage's per-layer settings: in a run's identity only when per_layer is on.
PER_LAYER_SETTINGS = ("per_layer", "per_layer_hidden", "per_layer_points")


@dataclass(init=False)
class RunConfig:
    """Settings of :func:`run` (also the options of ``bortfast run``): the run's own and one config per stage.

    ``RunConfig(teacher=..., out_dir=..., search=SearchStage(eps=8), distill=DistillStage(steps=100))``, or with
    the flat names of ``bortfast run``'s options: ``RunConfig(teacher=..., out_dir=..., eps=8, distill_steps=100)``
    (read back as ``cfg.eps`` / ``cfg.distill_steps`` too). A stage given both ways is refused.
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
    bench: BenchStage = field(default_factory=BenchStage, metadata={"cli": False})
    quality: QualityStage = field(default_factory=QualityStage, metadata={"cli": False})

    def __init__(self, teacher: str | os.PathLike, out_dir: str | os.PathLike, corpus: Any = (),
                 **settings: Any) -> None:
        self.teacher, self.out_dir, self.corpus = teacher, out_dir, corpus
        flat = {k: settings.pop(k) for k in list(settings) if k in FLAT_NAMES}
        for f in dataclasses.fields(self):
            if f.name in ("teacher", "out_dir", "corpus"):
                continue
            if f.name in settings:
                setattr(self, f.name, settings.pop(f.name))
            elif f.name not in STAGE_CONFIGS:
                setattr(self, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if settings:
            raise TypeError(f"RunConfig got unknown settings {sorted(settings)}")
        for stage, (cls, _) in STAGE_CONFIGS.items():
            mine = {FLAT_NAMES[k][1]: v for k, v in flat.items() if FLAT_NAMES[k][0] == stage}
            if stage in self.__dict__ and mine:
                raise ValueError(f"RunConfig got {stage}= and the flat settings {sorted(mine)} of that stage: give "
                                 f"the stage's settings one way")
            if stage not in self.__dict__:
                setattr(self, stage, cls(**mine))
            elif not isinstance(getattr(self, stage), cls):
                raise ValueError(f"RunConfig.{stage} must be a {cls.__name__}, got {getattr(self, stage)!r}")
        self.__post_init__()

    def __post_init__(self) -> None:
        self.corpus = [os.fspath(c) for c in ([self.corpus] if isinstance(self.corpus, (str, os.PathLike))
                                              else self.corpus)]
        self.teacher, self.out_dir = os.fspath(self.teacher), os.fspath(self.out_dir)
        _positive_ints(self, ("seq_len", "threads"), "")
        if self.until is not None and self.until not in STAGES:
            raise ValueError(f"RunConfig.until must be one of {list(STAGES)} or None, got {self.until!r}")
        if self.init not in ("inherit", "random"):
            raise ValueError(f"RunConfig.init must be 'inherit' or 'random', got {self.init!r}")
        if self.search.per_layer and self.finetune.task is not None:
            raise ValueError(f"--task {self.finetune.task!r} with --per-layer: fine-tuning a per-layer student is "
                             f"not supported yet; run without --task and fine-tune a uniform ξ, or drop --per-layer")

    def __getattr__(self, name: str) -> Any:  # only called for names that are no attribute: the flat ones
        if name in FLAT_NAMES:
            stage, key = FLAT_NAMES[name]
            return getattr(getattr(self, stage), key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in FLAT_NAMES:  # the stage's own field, re-validated
            stage, key = FLAT_NAMES[name]
            value, name = dataclasses.replace(getattr(self, stage), **{key: value}), stage
        object.__setattr__(self, name, value)

    def identity(self) -> dict[str, Any]:
        """The settings that define the run's results (a re-run must match them to resume), by flat name. The
        per-layer settings count only with ``per_layer`` on (a uniform run's identity is what it was before them)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in STAGE_CONFIGS
             and f.name not in ("overwrite", "progress", "out_dir", "until", "keep_intermediate")}
        d.update({name: getattr(getattr(self, stage), key) for name, (stage, key) in FLAT_NAMES.items()
                  if self.search.per_layer or name not in PER_LAYER_SETTINGS})
        return json.loads(json.dumps(d))  # tuples as lists, as pipeline.json holds them


def _log(cfg: RunConfig, msg: str) -> None:
    if cfg.progress:
        print(f"[bortfast run] {msg}", flush=True)


def _copytree_atomic(src: Path, dst: Path) -> None:
    """Copy a directory into place via a temp sibling and a rename, so ``dst`` is never half-written."""
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


class _State:
    """``pipeline.json``: the run's identity and each finished stage's outputs."""

    def __init__(self, cfg: RunConfig) -> None:
        self.path = Path(cfg.out_dir) / STATE_NAME
        identity = json.loads(json.dumps(cfg.identity()))
        if self.path.exists() and not cfg.overwrite:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ValueError(f"{self.path} is corrupt ({err}); re-run with --overwrite to start again") from None
            if data.get("config") != identity:
                changed = sorted(k for k in set(identity) | set(data.get("config", {}))
                                 if identity.get(k) != data.get("config", {}).get(k))
                raise FileExistsError(
                    f"{cfg.out_dir} holds a run with other settings (differs in {changed}); use another --out or "
                    f"--overwrite to discard it")
            self.data = data
        else:
            if cfg.overwrite:
                clear_own_dir(cfg.out_dir, STATE_NAME, RUN_OUTPUTS)  # only our own files; refuses . ~ /
            elif Path(cfg.out_dir).exists() and any(p.name not in LOCK_FILES for p in Path(cfg.out_dir).iterdir()):
                raise FileExistsError(f"{cfg.out_dir} is not empty and is not a bortfast run directory (no "
                                      f"{STATE_NAME}); use another --out")
            self.data = {"config": identity, "stages": {}}
            self.save()

    def save(self) -> None:
        write_json(self.path, self.data)

    def done(self, stage: str) -> dict | None:
        return self.data["stages"].get(stage)

    def finish(self, stage: str, outputs: dict, seconds: float) -> None:
        self.data["stages"][stage] = {"outputs": outputs, "seconds": round(seconds, 2)}
        self.save()


# ------------------------------------------------------------------------------------------------------ stages
def _stage_corpus(cfg: RunConfig, out: Path, st: dict) -> dict:
    if cfg.corpus:
        for path in cfg.corpus:
            if not path.startswith("hf:") and not Path(path).exists():
                raise FileNotFoundError(f"corpus path {path!r} does not exist")
        res = {"paths": list(cfg.corpus), "description": f"user corpus: {', '.join(cfg.corpus)}"}
    else:
        from bortfast.data.stdlib import write_stdlib_corpus

        path = out / "corpus" / "stdlib_docstrings.txt"
        info = write_stdlib_corpus(path)
        res = {"paths": [str(path)], "description": f"embedded default: {info['source']}, "
               f"{info['paragraphs']} paragraphs, {info['characters']} characters", **info}
    heldout = out / "corpus" / "heldout.txt"  # never trained on: search and distillation exclude these lines
    with atomic_open(heldout) as f:
        f.write("\n".join(_tail_lines(res["paths"], cfg.bench.sentences)) + "\n")
    return {**res, "heldout": str(heldout)}


def _tail_lines(paths: list[str], n: int) -> list[str]:
    """The last ``n`` distinct lines of 5 or more words of the (file) corpus: the held-out text."""
    lines: list[str] = []
    for path in paths:
        if path.startswith("hf:"):
            continue
        p = Path(path)
        for f in (sorted(p.rglob("*.txt")) if p.is_dir() else [p]):
            lines.extend(line.strip() for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
                         if len(line.split()) >= 5)
    lines = list(dict.fromkeys(lines))
    if not lines:
        raise ValueError("the corpus has no line of 5 or more words to hold out for evaluation")
    return lines[-n:]


def _stage_search(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.apps.extract import extract

    search_dir = out / "search"
    # SearchStage's fields are SearchConfig's, except the three that are no SearchConfig field
    settings = {k: v for k, v in dataclasses.asdict(cfg.search).items()
                if k not in ("space", "lrs", "engine_check", "by_w")}
    if cfg.search.by_w:  # W's argmax: no budget
        settings.update(max_latency=None, min_speedup=None, max_error=None)
    result = extract(
        cfg.teacher, st["corpus"]["paths"], cfg.search.space, out_dir=search_dir,
        thetas=tuple({"lr": lr} for lr in cfg.search.lrs), seq_len=cfg.seq_len, threads=cfg.threads, seed=cfg.seed,
        max_blocks=cfg.max_blocks, progress=cfg.progress, init=cfg.init, exclude_file=st["corpus"]["heldout"],
        check=_engine_check(cfg, out), **settings,
    )
    for name in ("search.json", "pareto.png"):
        shutil.copyfile(search_dir / name, out / f".{name}.tmp")
        os.replace(out / f".{name}.tmp", out / name)
    best = result.candidates[result.best]
    per_layer = isinstance(best.arch, PerLayerArch)  # ξ* as DistillConfig.arch: "D,A,H,I" or "H=..;d=..;A=..;I=.."
    return {"arch": best.arch.spec if per_layer else ",".join(str(v) for v in best.arch.tuple),
            **({"teacher_layers": best.teacher_layers} if per_layer else {}), "params": best.params,
            "latency": best.latency, "latency_unit": result.latency_unit, "error": best.error, "W": best.w,
            "theta": result.best_theta, "trainings": result.trainings, "selection": result.selection,
            "error_param_spearman": result.error_param_spearman}


def _engine_check(cfg: RunConfig, out: Path) -> Any:
    """The deployment-engine check of a latency budget's finalists (None: no budget, or switched off). With FLOPs
    as î only the speed-up floor is checked: a budget in FLOPs has no ms to compare with."""
    s = cfg.search
    flops = s.latency != "kernel"
    if not s.engine_check or s.by_w or s.min_speedup is None and (flops or s.max_latency is None):
        return None
    from transformers import AutoConfig

    from bortfast.apps.engine_check import OrtSpeedCheck

    teacher_arch = Arch.from_config(AutoConfig.from_pretrained(cfg.teacher))
    return OrtSpeedCheck(teacher_arch, out / "work" / "engine-check", seq_len=cfg.seq_len, threads=cfg.threads,
                         seed=cfg.seed, check_latency=not flops)


def _stage_distill(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.distill import DistillConfig, distill

    d = cfg.distill  # DistillStage's fields are DistillConfig's
    dcfg = DistillConfig(
        teacher=cfg.teacher, corpus=st["corpus"]["paths"], arch=st["search"]["arch"], out_dir=str(out / "distill"),
        **{**dataclasses.asdict(d), "seq_len": d.seq_len or cfg.seq_len},
        max_blocks=cfg.max_blocks, seed=cfg.seed, eval_every=max(1, d.steps // 4),
        checkpoint_every=max(1, d.steps // 4), progress=cfg.progress, init=cfg.init,
        exclude_file=st["corpus"]["heldout"], teacher_layers=st["search"].get("teacher_layers"),
    )  # a per-layer ξ* is cut from the teacher layers the search chose for it (None: a uniform ξ*, by rule)
    final = distill(dcfg)
    _copytree_atomic(final, out / "student")
    return {"student_dir": str(out / "student"), "arch": st["search"]["arch"]}


def _stage_finetune(cfg: RunConfig, out: Path, st: dict) -> dict:
    f = cfg.finetune
    if f.task is None:
        return {"skipped": True}
    from bortfast.finetune.config import FinetuneConfig, TaskDistillConfig
    from bortfast.finetune.task_distill import distill_task, is_finetuned
    from bortfast.finetune.train import finetune

    if is_finetuned(cfg.teacher):  # a fine-tuned teacher: distil ξ* from it on the task (encoder and head)
        result = distill_task(TaskDistillConfig(
            task=f.task, data=f.task_data, teacher=cfg.teacher, arch=st["search"]["arch"],
            out_dir=str(out / "finetuned"), epochs=f.epochs, max_train_examples=f.max_train,
            lr=f.lr, seed=cfg.seed, progress=cfg.progress))
        return {"skipped": False, "task": f.task, "method": "task_distill", "result": result}
    result = finetune(out / "student", f.task, f.task_data, out / "finetuned",
                      FinetuneConfig(epochs=f.epochs, max_train_examples=f.max_train, learning_rate=f.lr,
                                     heldout_fraction=f.heldout_fraction, seed=cfg.seed, progress=cfg.progress))
    return {"skipped": False, "task": f.task, "method": "finetune", "result": result}


def _save_encoder(model: Any, tokenizer: Any, path: Path) -> None:
    from bortfast.models import ship_model_code

    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        ship_model_code(tmp)
        tokenizer.save_pretrained(tmp)


def _stage_export(cfg: RunConfig, out: Path, st: dict) -> dict:
    from transformers import AutoTokenizer

    from bortfast.data.teacher import load_teacher
    from bortfast.export.onnx import to_onnx
    from bortfast.models.perlayer import load_student

    # The deployed artefact is the student's encoder (BertModel): the MLM head is only for pretraining.
    work = out / "work"
    student_encoder = work / "student_encoder"
    _save_encoder(load_student(out / "student", "BertModel", add_pooling_layer=False),
                  AutoTokenizer.from_pretrained(out / "student"), student_encoder)
    teacher = load_teacher(cfg.teacher)
    teacher_encoder = work / "teacher_encoder"
    _save_encoder(teacher.model.base_model, teacher.tokenizer, teacher_encoder)
    # from the student directory itself: its sentence-transformers modules give the files' pooling and normalisation
    reports = {
        "fp32": to_onnx(out / "student", out / "model.onnx", encoder_only=True),
        "int8": to_onnx(out / "student", out / "model.int8.onnx", quantize="int8", encoder_only=True),
    }
    # sentence-transformers' ONNX backend reads onnx/model.onnx inside the model folder
    from bortfast.export.st_onnx import write_sentence_transformers_onnx

    write_sentence_transformers_onnx(out / "student", out / "model.onnx")
    return {"student_encoder": str(student_encoder), "teacher_encoder": str(teacher_encoder),
            **{k: dataclasses.asdict(r) for k, r in reports.items()}}


def _heldout_sentences(cfg: RunConfig, st: dict) -> list[str]:
    """Held-out text for timing and quality: the corpus stage's ``heldout.txt``, lines that search and
    distillation excluded from their training blocks."""
    return Path(st["corpus"]["heldout"]).read_text(encoding="utf-8").splitlines()


def _stage_bench(cfg: RunConfig, out: Path, st: dict) -> dict:
    from bortfast.apps.bench import SpeedupConfig, run_speedup

    sentences = _heldout_sentences(cfg, st)
    result = run_speedup(SpeedupConfig(
        out_dir=str(out), student_dir=st["export"]["student_encoder"], teacher_dir=st["export"]["teacher_encoder"],
        include_large=False, sentences=sentences, threads=cfg.threads, rounds=cfg.bench.rounds,
        seq_len=cfg.seq_len, seed=cfg.seed, work_dir=str(out / "work" / "bench"), progress=cfg.progress,
    ))
    precision = _precision_choice(cfg, out, st, result, sentences)
    return {"speedup_json": str(out / "speedup.json"), "summary": _bench_headline(result), "precision": precision,
            "busy": result["busy"]}


def _precision_choice(cfg: RunConfig, out: Path, st: dict, result: dict, sentences: list[str]) -> dict:
    """Which file to deploy: INT8 only when the bench's isolated B=1 timing shows it faster than fp32 and it agrees
    with fp32 on the held-out sentences (pooled cosine); both figures recorded (issue 15.4)."""
    from bortfast.export.precision import PrecisionConfig, decide, output_agreement, sample_batches

    config = PrecisionConfig(threads=cfg.threads, seq_len=cfg.seq_len)
    b0 = result["config"]["batch_sizes"][0]
    rows = {r["engine"].split()[2]: r for r in result["fixed"]
            if r["batch"] == b0 and r["engine"].startswith("ORT student")}  # "ORT student fp32 <...>"
    speedup = rows["fp32"]["median_ms"] / rows["int8"]["median_ms"]
    batches, sample = sample_batches(Path(st["export"]["student_encoder"]), sentences[:256], config)
    metric, agreement = output_agreement(out / "model.onnx", out / "model.int8.onnx", batches)
    chosen, reason = decide(speedup, agreement, config)
    return {"chosen": chosen, "file": "model.int8.onnx" if chosen == "int8" else "model.onnx", "reason": reason,
            "batch": b0, "int8_speedup": speedup, "agreement_metric": metric, "agreement": agreement,
            "sample": sample, "fp32": {k: rows["fp32"][k] for k in ("median_ms", "min_ms", "max_ms", "n")},
            "int8": {k: rows["int8"][k] for k in ("median_ms", "min_ms", "max_ms", "n")}}


def _bench_headline(result: dict) -> dict:
    """The speed-ups the summary shows (student over the teacher in PyTorch, per batch size and end to end; INT8
    over fp32 at the first batch size)."""
    headline = {k: v for k, v in result["speedups"].items() if isinstance(v, (int, float))}
    b0 = result["config"]["batch_sizes"][0]
    if f"student_int8_vs_torch_teacher_b{b0}" in headline:
        headline[f"student_int8_vs_student_fp32_b{b0}"] = (headline[f"student_int8_vs_torch_teacher_b{b0}"]
                                                          / headline[f"student_fp32_vs_torch_teacher_b{b0}"])
    return headline


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


def _stage_quality(cfg: RunConfig, out: Path, st: dict) -> dict:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from bortfast.data.teacher import load_teacher
    from bortfast.models.perlayer import load_student

    sentences = _heldout_sentences(cfg, st)
    teacher = load_teacher(cfg.teacher)
    student = load_student(out / "student", "BertModel", add_pooling_layer=False).eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "student")
    projection = None
    proj_file = out / "student" / "projection.safetensors"
    if proj_file.is_file():
        weights = load_file(str(proj_file))
        projection = torch.nn.Linear(weights["weight"].shape[1], weights["weight"].shape[0])
        projection.load_state_dict(weights)
    t_emb = sentence_embeddings(teacher.model.base_model, teacher.tokenizer, sentences, cfg.seq_len)
    s_emb = sentence_embeddings(student, tokenizer, sentences, cfg.seq_len, projection)
    scores = quality_scores(s_emb, t_emb)
    metrics_file = out / "distill" / "metrics.jsonl"
    if metrics_file.is_file():
        from bortfast._base.io import read_jsonl

        evals = [r for r in read_jsonl(metrics_file) if "heldout_loss" in r or "mlm_accuracy" in r]
        if evals:
            scores["distill_final_eval"] = evals[-1]
    scores["sentences"] = len(sentences)
    if teacher.kind == "mlm":
        scores["mlm"] = _mlm_quality(cfg, out, teacher, sentences)
    if cfg.quality.sts is not None:
        scores["sts"] = _sts_quality(cfg, out, teacher, student, tokenizer)
    # Which data chose and which reports (DESIGN §8): no quality score chose anything in a run, ê did
    scores["splits"] = {
        "chose": "ê, the distillation loss on held-out corpus blocks of the search (and the speed budget)",
        "reports": [f"{len(sentences)} held-out corpus lines (corpus/heldout.txt, never trained on)"]
        + ([f"STS: {cfg.quality.sts}"] if cfg.quality.sts is not None else [])}
    write_json(out / "quality.json", scores)
    return scores


def _mlm_quality(cfg: RunConfig, out: Path, teacher: Any, sentences: list[str]) -> dict:
    """Held-out masked-token accuracy of the teacher and the student (with its MLM head), same masked positions."""
    from bortfast.apps.quality import mlm_accuracy
    from bortfast.models.perlayer import load_student

    student = load_student(out / "student", "BertForMaskedLM")
    res = {"teacher": mlm_accuracy(teacher.model, teacher.tokenizer, sentences, max_len=cfg.seq_len, seed=cfg.seed),
           "student": mlm_accuracy(student, teacher.tokenizer, sentences, max_len=cfg.seq_len, seed=cfg.seed)}
    res["retained"] = res["student"]["accuracy"] / max(res["teacher"]["accuracy"], 1e-12)
    return res


def _sts_quality(cfg: RunConfig, out: Path, teacher: Any, student: Any, tokenizer: Any) -> dict:
    """STS Spearman (the teacher's own pooling) of the teacher, ξ* and, on a sample of pairs, every trained pivot
    as inherited (before its short training); ``quality.png`` plots them against î."""
    from bortfast.apps.quality import head_pairs, model_pooling, plot_quality, read_sts, sts_spearman, torch_embedder

    pairs = read_sts(cfg.quality.sts)
    pooling = model_pooling(cfg.teacher)
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    res = {"file": cfg.quality.sts, "pairs": len(pairs.scores), "pooling": pooling,
           "teacher": sts_spearman(torch_embedder(teacher.model, teacher.tokenizer, pooling=pooling), pairs),
           "student": sts_spearman(torch_embedder(student, tokenizer, pooling=pooling), pairs),
           "teacher_latency": search["teacher_latency"], "latency_unit": search["latency_unit"],
           "student_latency": search["candidates"][search["best"]]["latency"]}
    res["retained"] = res["student"] / res["teacher"]
    res["pivots"] = _pivot_sts(cfg, out, teacher, search, pooling, head_pairs(pairs, 400))
    plot_quality(res, out / "quality.png")
    return res


def _pivot_sts(cfg: RunConfig, out: Path, teacher: Any, search: dict, pooling: str, pairs: Any) -> list[dict]:
    from tqdm.auto import tqdm

    from bortfast.apps.quality import sts_spearman, torch_embedder
    from bortfast.distill.inherit import Importance, inherit_student
    from bortfast.distill.perlayer import inherit_per_layer
    from bortfast.search.algorithm import arch_from_dict
    from bortfast.search.choice import arch_key

    caches = sorted((out / "search").glob("importance-*.npz"))
    if cfg.init != "inherit" or len(caches) != 1:
        return []
    imp = Importance.load(caches[0])
    rows = []
    trained = [c for c in search["candidates"] if c.get("error") is not None]
    for c in tqdm(trained, desc="pivot quality", disable=not cfg.progress, leave=False):
        arch = arch_from_dict(c["arch"])
        if isinstance(arch, PerLayerArch):  # cut from the teacher layers the frontier chose for it
            model = inherit_per_layer(arch, teacher.model, imp, teacher_layers=c["teacher_layers"],
                                      model_class="BertModel")
        else:
            model = inherit_student(arch, teacher.model, imp, model_class="BertModel")
        rows.append({"arch": arch_key(arch), "latency": c["latency"], "error": c["error"],
                     "sts_inherited": sts_spearman(torch_embedder(model, teacher.tokenizer, pooling=pooling), pairs)})
    return rows


def speedup_label(key: str) -> str:
    """A speed-up key of ``speedup.json`` as the summary shows it (the run's baseline is its teacher)."""
    return key.replace("torch_teacher", "teacher(PyTorch)").replace("teacher_fp32", "teacher(ORT fp32)")


def _fmt_int(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _stage_summary(cfg: RunConfig, out: Path, st: dict) -> dict:
    search = json.loads((out / "search.json").read_text(encoding="utf-8"))
    md = render_summary(cfg, st, search)
    with atomic_open(out / "summary.md") as f:
        f.write(md)
    card = _write_card(cfg, out, st)
    return {"summary_md": str(out / "summary.md"), "model_card": str(card)}


def _write_card(cfg: RunConfig, out: Path, st: dict) -> Path:
    """``student/README.md``: what the student is, what it was distilled from and what it was measured to keep and
    gain in this run (the figures of the quality and bench stages)."""
    from bortfast.export.card import ModelCardInfo, QualityRow, SpeedRow, write_model_card

    quality, rows = st["quality"], []
    if "sts" in quality:
        q = quality["sts"]
        rows.append(QualityRow("Spearman (cosine)", Path(q["file"]).name, q["teacher"], q["student"]))
    if "mlm" in quality:
        m = quality["mlm"]
        rows.append(QualityRow("masked-token accuracy", "held-out corpus lines", m["teacher"]["accuracy"],
                               m["student"]["accuracy"]))
    speedup = json.loads((out / "speedup.json").read_text(encoding="utf-8"))
    machine = f"{speedup['machine']['processor']}, {speedup['machine']['threads']} thread(s)"
    speed = [SpeedRow(f"ONNX Runtime {speedup['machine']['onnxruntime']} fp32, both", int(key[1:]),
                      entry["latency_ratio"], machine, speedup["date_utc"][:10], seq_len=cfg.seq_len)
             for key, entry in speedup["same_engine"].items()]
    return write_model_card(out / "student", ModelCardInfo(
        teacher_path=cfg.teacher, corpus=st["corpus"]["description"], steps=cfg.distill.steps, quality=rows,
        speed=speed, command="bortfast run (see pipeline.json for every setting)"))


def _arch_str(a: dict | list | str) -> str:
    """ξ in the summary: ``⟨D, A, H, I⟩``, or a per-layer ξ's spec (what ``bortfast distill --arch`` takes)."""
    from bortfast.search.algorithm import arch_from_dict

    if isinstance(a, str) or "head_dim" in a:  # a spec (checks, pivots) or a PerLayerArch's dict (search.json)
        return f"`{a if isinstance(a, str) else arch_from_dict(a).spec}`"
    if isinstance(a, list):
        a = dict(zip(("layers", "heads", "hidden", "intermediate"), a))
    return f"⟨{a['layers']}, {a['heads']}, {a['hidden']}, {a['intermediate']}⟩"


def _space_line(cfg: RunConfig, search: dict) -> str:
    per_layer = search["settings"].get("per_layer")
    if per_layer is None:
        return cfg.search.space
    return (f"per-layer frontier (knapsack DP over hidden sizes {per_layer['hidden']}, at most {per_layer['points']} "
            f"points each)")


def _checks_line(checks: list[dict] | None) -> str:
    if not checks:
        return ""
    timed = "; ".join(f"{_arch_str(c['arch'])} "
                      f"{c['speedup']:.2f}x{'' if c['ok'] else ' (rejected)'}"
                      f"{' (head-count twin)' if 'twin_of' in c else ''}" for c in checks)
    return f"; finalists timed against the teacher in {checks[-1]['engine']}: {timed}"


def render_summary(cfg: RunConfig, st: dict, search: dict) -> str:
    """``summary.md``: ξ* vs the teacher, the top candidates by W, speed-ups and quality retained."""
    cands = search["candidates"]
    unit = search["latency_unit"]
    best = cands[search["best"]]
    lines = [
        "# bortfast run summary", "",
        f"- teacher: `{cfg.teacher}` {_arch_str(search['teacher'])}",
        f"- corpus: {st['corpus']['description']}",
        f"- search space: {_space_line(cfg, search)}, {len(cands)} architectures, ε = {cfg.search.eps}, "
        f"{search['trainings']} short trainings of {cfg.search.steps} steps, Θ = lr {list(cfg.search.lrs)}, "
        f"latency proxy î: {cfg.search.latency} ({unit})",
        f"- chosen ξ* = {_arch_str(best['arch'])}"
        + (f" (per-layer: teacher layers {best['teacher_layers']})" if best.get("teacher_layers") else "")
        + f", θ* = {search['best_theta']}, W = {search['best_w']:.4g}, by "
        f"{(search.get('selection') or {}).get('rule', 'W')}"
        + (f"; Spearman(ê, p̂) over the pivots = {search['error_param_spearman']:.3f}"
           if search.get("error_param_spearman") is not None else "")
        + _checks_line((search.get("selection") or {}).get("checks")), "",
        "## ξ* vs the teacher", "",
        f"| | architecture | parameters | î ({unit}) | ê |", "|---|---|---|---|---|",
        f"| teacher | {_arch_str(search['teacher'])} | {_fmt_int(search['teacher_params'])} | "
        f"{search['teacher_latency']:.4g} | – |",
        f"| ξ* | {_arch_str(best['arch'])} | {_fmt_int(best['params'])} | {best['latency']:.4g} | "
        f"{best['error']:.4g} |",
        f"| ratio | | {search['teacher_params'] / best['params']:.1f}x fewer | "
        f"{search['teacher_latency'] / best['latency']:.1f}x lower | |", "",
        "## Top candidates by W", "",
        f"| rank | architecture | parameters | î ({unit}) | ê | W |", "|---|---|---|---|---|---|",
    ]
    trained = [c for c in cands if c.get("w") is not None]
    for rank, c in enumerate(sorted(trained, key=lambda c: -c["w"])[:10], 1):
        lines.append(f"| {rank} | {_arch_str(c['arch'])} | {_fmt_int(c['params'])} | {c['latency']:.4g} | "
                     f"{c['error']:.4g} | {c['w']:.4g} |")
    lines += ["", "## Speed-up of the deployed student (ONNX Runtime) over the teacher (PyTorch)", ""]
    if st["bench"].get("busy"):
        lines += ["**Timed while other processes loaded the machine**: these are not quiet figures (`speedup.json`, "
                  "each row's `load`).", ""]
    lines += ["| measure | speed-up |", "|---|---|"]
    lines += [f"| {speedup_label(k)} | {v:.2f}x |" for k, v in st["bench"]["summary"].items()]
    quality = st["quality"]
    lines += ["", "## Quality retained", "",
              f"On {quality['sentences']} held-out corpus lines: Spearman ρ between the student's and the teacher's "
              f"pairwise sentence similarities = {quality['similarity_spearman']:.3f}"
              + (f"; mean cosine of projected student vs teacher sentence embeddings = {quality['cosine']:.3f}"
                 if "cosine" in quality else "") + "."]
    if "mlm" in quality:
        m = quality["mlm"]
        lines += ["", f"Held-out masked-token accuracy ({m['teacher']['masked_tokens']} masked tokens of the same "
                  f"lines, same positions): teacher {m['teacher']['accuracy']:.4f}, ξ* {m['student']['accuracy']:.4f} "
                  f"(**{100 * m['retained']:.1f}%** of the teacher)."]
    if "sts" in quality:
        q = quality["sts"]
        lines += ["", f"STS ({q['file']}, {q['pairs']} pairs, {q['pooling']} pooling, cosine): Spearman ρ teacher "
                  f"{q['teacher']:.4f}, ξ* {q['student']:.4f} (**{100 * q['retained']:.1f}%** of the teacher). "
                  f"`quality.png` plots quality against î for the teacher, ξ* and the pivots (as inherited)."]
    if not st["finetune"].get("skipped", True):
        dev = st["finetune"]["result"].get("dev", {})
        lines += ["", f"## Fine-tuning ({cfg.finetune.task}, {cfg.finetune.epochs} epoch(s), at most "
                  f"{cfg.finetune.max_train} training examples)", "", "| dev metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in dev.items() if isinstance(v, (int, float))]
    loader = "`bortfast.load_student`" if "head_dim" in best["arch"] else "`from_pretrained`"
    config_file = Path(cfg.out_dir) / "student" / "config.json"
    kind = (json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or ["BertModel"])[0] \
        if config_file.is_file() else "BertForMaskedLM"
    lines += ["", "## Files", "", f"`search.json`, `pareto.png`, `student/` ({kind}, loads with {loader}), "
              "`model.onnx`, `model.int8.onnx`, `speedup.json`, `speedup.png`, `pipeline.json`.", ""]
    return "\n".join(lines)


_STAGE_FUNCS: dict[str, Callable[[RunConfig, Path, dict], dict]] = {
    "corpus": _stage_corpus, "search": _stage_search, "distill": _stage_distill, "finetune": _stage_finetune,
    "export": _stage_export, "bench": _stage_bench, "quality": _stage_quality, "summary": _stage_summary,
}


def run(config: RunConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run (or resume) the pipeline; return ``pipeline.json``'s content. Pass a :class:`RunConfig` or its fields."""
    cfg = config if config is not None else RunConfig(**kwargs)
    from bortfast._base.state import quiet_transformers

    # per-load reports (e.g. the unused pooler) would drown the stage messages; the caller's level comes back after
    with output_lock(cfg.out_dir, "bortfast run"), quiet_transformers():
        return _run_stages(cfg)


def _check_per_layer_hidden(cfg: RunConfig) -> None:
    """--per-layer-hidden against the teacher's shape before anything is written (a fixed value then resumes)."""
    if not (cfg.search.per_layer and cfg.search.per_layer_hidden):
        return
    from transformers import AutoConfig

    t = Arch.from_config(AutoConfig.from_pretrained(cfg.teacher))
    for h in cfg.search.per_layer_hidden:
        if h > t.hidden or h % t.head_dim:
            raise ValueError(f"--per-layer-hidden {h}: per-layer hidden size {h} must be a multiple of head_dim="
                             f"{t.head_dim} in (0, {t.hidden}] (the teacher's head size and hidden size)")


def _run_stages(cfg: RunConfig) -> dict[str, Any]:
    out = Path(cfg.out_dir)
    _check_per_layer_hidden(cfg)
    state = _State(cfg)
    outputs = {name: rec["outputs"] for name, rec in state.data["stages"].items()}
    stages = STAGES[:STAGES.index(cfg.until) + 1] if cfg.until else STAGES
    for name in stages:
        if state.done(name):
            _log(cfg, f"stage {name}: done earlier, skipped")
            continue
        _log(cfg, f"stage {name} ...")
        t0 = time.perf_counter()
        try:
            result = _STAGE_FUNCS[name](cfg, out, outputs)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            raise StageError(f"stage '{name}' failed: {type(err).__name__}: {err} (outputs of earlier stages are "
                             f"kept in {out}; re-run the same command to resume)") from err
        outputs[name] = json.loads(json.dumps(result, default=str))
        state.finish(name, outputs[name], time.perf_counter() - t0)
    if cfg.until and cfg.until != STAGES[-1]:
        _log(cfg, f"stopped after stage {cfg.until} (--until); re-run without --until to finish")
    elif not cfg.keep_intermediate:
        _remove_intermediate(out)
    return state.data


# What a finished run no longer needs (resume is over): copies and checkpoints, tens of MB beside a few-MB student.
INTERMEDIATE = ("work", "distill/checkpoints", "distill/final")


def _remove_intermediate(out: Path) -> None:
    """Delete the run's own intermediate files once every stage has finished (``--keep-intermediate`` keeps them);
    the deliverables (student, ONNX files, reports) and the logs stay."""
    for rel in INTERMEDIATE:
        parts = [out.joinpath(*rel.split("/")[:k]) for k in range(1, rel.count("/") + 2)]
        if any(p.is_symlink() for p in parts) or not parts[-1].is_dir():
            continue  # never through a link: what it points at is not ours
        shutil.rmtree(parts[-1])
