"""Task registry for fine-tuning: GLUE, SuperGLUE and RACE-style tasks read from their original file formats.

The Bort paper (de Wynter & Perry 2020, §5 "Evaluation") fine-tunes on GLUE, SuperGLUE and RACE. This module turns
the files those benchmarks ship into a list of :class:`Example` and scores predictions with each benchmark's own
metrics (GLUE: Wang et al. 2019, §3 and Table 1; SuperGLUE: Wang et al. 2019b, Table 1):

* GLUE TSV directories (``train.tsv``, ``dev.tsv``; MNLI ``dev_matched.tsv`` / ``dev_mismatched.tsv``), read with
  ``csv.reader(delimiter="\\t", quotechar=None)`` as GLUE's own scripts do, each task with its own column layout;
  CoLA has no header, MRPC's header starts with a UTF-8 BOM (files are opened as ``utf-8-sig``).
* SuperGLUE JSONL directories (``train.jsonl``, ``val.jsonl``): BoolQ, CB, COPA, RTE, WiC, WSC.
* RACE-style multiple choice JSON: a directory ``<split>/`` (searched recursively, as RACE's ``train/high/*.txt``)
  whose files each hold one JSON object ``{"article", "questions", "options", "answers"}``, or ``<split>.jsonl``
  with one such object per line.
* A Hugging Face ``datasets`` name (GLUE tasks only) when ``data`` is not an existing path; needs the ``datasets``
  package and network access, and says so clearly when either is missing.

Every malformed row raises ``ValueError("<file>:<line>: ...")``; a label outside the task's label set is an error
(never silently dropped). How the SuperGLUE/RACE fields become BERT input pairs is not specified by the paper; the
choices made here are documented on each converter.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bortfast.models.config import CLASSIFICATION, MULTIPLE_CHOICE, REGRESSION  # the kinds of head a task needs


@dataclass(frozen=True)
class Example:
    """One labelled input. For multiple choice, ``choices`` holds the second segment of each (text_a, choice) pair."""

    text_a: str
    text_b: str | None = None
    label: float | int | None = None  # class index, regression target, or index of the right choice
    choices: tuple[str, ...] | None = None
    source: str = ""  # "file:line" (or "datasets:name[i]") for error messages and provenance


@dataclass(frozen=True)
class TaskSpec:
    """How one task is stored, what its labels are, and how it is scored."""

    name: str  # registry key, e.g. "sst2"
    benchmark: str  # "glue" | "superglue" | "race"
    kind: str  # CLASSIFICATION | REGRESSION | MULTIPLE_CHOICE
    dirname: str  # the task's directory inside a benchmark root, e.g. "SST-2"
    splits: dict[str, str] = field(hash=False)  # split name -> file (or directory) name inside the task directory
    metrics: tuple[str, ...]  # metric names, see compute_metrics
    labels: tuple[str, ...] = ()  # label strings as written in the files, in class-index order
    num_choices: int = 0  # multiple choice: answers per question
    # GLUE TSV layout (column indices; label_col may be negative)
    header: bool = True
    ncols: int | None = None  # expected columns per row; None: as many as the header has
    text_a_col: int = 0
    text_b_col: int | None = None
    label_col: int = -1
    # JSON records -> Example (SuperGLUE / RACE)
    convert: Callable[[TaskSpec, dict, str], list[Example]] | None = field(default=None, hash=False, compare=False)
    hf: tuple[str, str] | None = None  # (datasets path, config name) for loading by name
    hf_fields: tuple[str, ...] = ()  # text_a field, [text_b field]

    @property
    def num_labels(self) -> int:
        """Outputs of the head: classes, 1 for regression, 1 score per choice for multiple choice."""
        return len(self.labels) if self.kind == CLASSIFICATION else 1

    def label_index(self, value: Any, where: str) -> int:
        text = _label_text(value)
        if text not in self.labels:
            raise ValueError(f"{where}: label {value!r} is not one of task {self.name}'s labels {list(self.labels)}")
        return self.labels.index(text)


def _label_text(value: Any) -> str:
    if isinstance(value, bool):  # JSON true/false
        return "true" if value else "false"
    return str(value).strip()


# ---------------------------------------------------------------------------------------------------- SuperGLUE


def _need(rec: dict, keys: Sequence[str], where: str) -> list[Any]:
    missing = [k for k in keys if k not in rec]
    if missing:
        raise ValueError(f"{where}: record lacks field(s) {missing}; it has {sorted(rec)}")
    return [rec[k] for k in keys]


def _pair(a_key: str, b_key: str) -> Callable[[TaskSpec, dict, str], list[Example]]:
    def convert(spec: TaskSpec, rec: dict, where: str) -> list[Example]:
        a, b, label = _need(rec, [a_key, b_key, "label"], where)
        return [Example(str(a), str(b), spec.label_index(label, where), source=where)]

    return convert


def _convert_wic(spec: TaskSpec, rec: dict, where: str) -> list[Example]:
    # The target word is prefixed to the first sentence ("bank : He sat on the bank.") so a sentence-level
    # classifier sees which word's sense is asked about; the paper does not say how Bort's input was built.
    word, s1, s2, label = _need(rec, ["word", "sentence1", "sentence2", "label"], where)
    return [Example(f"{word} : {s1}", str(s2), spec.label_index(label, where), source=where)]


def _convert_wsc(spec: TaskSpec, rec: dict, where: str) -> list[Example]:
    # The pair is (text, "<pronoun> refers to <noun phrase>"): a binary decision on that statement.
    text, target, label = _need(rec, ["text", "target", "label"], where)
    if not isinstance(target, dict):
        raise ValueError(f"{where}: field 'target' must be an object, got {type(target).__name__}")
    span1, span2 = _need(target, ["span1_text", "span2_text"], where + " (target)")
    return [Example(str(text), f"{span2} refers to {span1}", spec.label_index(label, where), source=where)]


_COPA_QUESTION = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def _convert_copa(spec: TaskSpec, rec: dict, where: str) -> list[Example]:
    # Multiple choice over (premise, "<question> <choice>") pairs, the question spelled out in words.
    premise, c1, c2, question, label = _need(rec, ["premise", "choice1", "choice2", "question", "label"], where)
    if question not in _COPA_QUESTION:
        raise ValueError(f"{where}: COPA question {question!r} is not 'cause' or 'effect'")
    q = _COPA_QUESTION[question]
    return [Example(str(premise), None, spec.label_index(label, where), choices=(f"{q} {c1}", f"{q} {c2}"),
                    source=where)]


def _convert_race(spec: TaskSpec, rec: dict, where: str) -> list[Example]:
    # One example per question: (article, question-with-option) pairs; a cloze question ("... _ ...") gets the
    # option written into the blank, other questions get "question option".
    article, questions, options, answers = _need(rec, ["article", "questions", "options", "answers"], where)
    if not (len(questions) == len(options) == len(answers)):
        raise ValueError(f"{where}: {len(questions)} questions, {len(options)} option lists and {len(answers)} "
                         "answers; they must be equally many")
    out = []
    for i, (q, opts, ans) in enumerate(zip(questions, options, answers)):
        w = f"{where} question {i}"
        if len(opts) != spec.num_choices:
            raise ValueError(f"{w}: {len(opts)} options, task {spec.name} expects {spec.num_choices}")
        choices = tuple(q.replace("_", str(o)) if "_" in q else f"{q} {o}" for o in opts)
        out.append(Example(str(article), None, spec.label_index(ans, w), choices=choices, source=w))
    return out


# ---------------------------------------------------------------------------------------------------- registry

_GLUE_SPLITS = {"train": "train.tsv", "dev": "dev.tsv"}
_SG_SPLITS = {"train": "train.jsonl", "dev": "val.jsonl"}


def _glue(name: str, dirname: str, **kw: Any) -> TaskSpec:
    kw.setdefault("splits", _GLUE_SPLITS)
    kw.setdefault("kind", CLASSIFICATION)
    return TaskSpec(name=name, benchmark="glue", dirname=dirname, hf=("nyu-mll/glue", name), **kw)


def _superglue(name: str, dirname: str, convert: Callable, **kw: Any) -> TaskSpec:
    kw.setdefault("kind", CLASSIFICATION)
    return TaskSpec(name=name, benchmark="superglue", dirname=dirname, splits=_SG_SPLITS, convert=convert, **kw)


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    # CoLA: no header; source, label, original mark, sentence.
    _glue("cola", "CoLA", metrics=("mcc",), labels=("0", "1"), header=False, ncols=4, text_a_col=3, label_col=1,
          hf_fields=("sentence",)),
    _glue("sst2", "SST-2", metrics=("accuracy",), labels=("0", "1"), text_a_col=0, label_col=1,
          hf_fields=("sentence",)),
    # MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String (the header starts with a BOM).
    _glue("mrpc", "MRPC", metrics=("accuracy", "f1"), labels=("0", "1"), text_a_col=3, text_b_col=4, label_col=0,
          hf_fields=("sentence1", "sentence2")),
    # STS-B: index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score.
    _glue("stsb", "STS-B", kind=REGRESSION, metrics=("pearson", "spearman"), text_a_col=7, text_b_col=8,
          label_col=9, hf_fields=("sentence1", "sentence2")),
    # QQP: id, qid1, qid2, question1, question2, is_duplicate.
    _glue("qqp", "QQP", metrics=("accuracy", "f1"), labels=("0", "1"), text_a_col=3, text_b_col=4, label_col=5,
          hf_fields=("question1", "question2")),
    # MNLI: index, promptID, pairID, genre, 4 parse columns, sentence1, sentence2, label1[..label5], gold_label.
    _glue("mnli", "MNLI", metrics=("accuracy",), labels=("contradiction", "entailment", "neutral"),
          splits={"train": "train.tsv", "dev": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv"},
          text_a_col=8, text_b_col=9, label_col=-1, hf_fields=("premise", "hypothesis")),
    # QNLI: index, question, sentence, label.
    _glue("qnli", "QNLI", metrics=("accuracy",), labels=("entailment", "not_entailment"), text_a_col=1,
          text_b_col=2, label_col=3, hf_fields=("question", "sentence")),
    _glue("rte", "RTE", metrics=("accuracy",), labels=("entailment", "not_entailment"), text_a_col=1,
          text_b_col=2, label_col=3, hf_fields=("sentence1", "sentence2")),
    _glue("wnli", "WNLI", metrics=("accuracy",), labels=("0", "1"), text_a_col=1, text_b_col=2, label_col=3,
          hf_fields=("sentence1", "sentence2")),
    _superglue("boolq", "BoolQ", _pair("question", "passage"), metrics=("accuracy",), labels=("false", "true")),
    _superglue("cb", "CB", _pair("premise", "hypothesis"), metrics=("accuracy", "f1_macro"),
               labels=("entailment", "contradiction", "neutral")),
    _superglue("copa", "COPA", _convert_copa, kind=MULTIPLE_CHOICE, metrics=("accuracy",), labels=("0", "1"),
               num_choices=2),
    _superglue("superglue-rte", "RTE", _pair("premise", "hypothesis"), metrics=("accuracy",),
               labels=("entailment", "not_entailment")),
    _superglue("wic", "WiC", _convert_wic, metrics=("accuracy",), labels=("false", "true")),
    _superglue("wsc", "WSC", _convert_wsc, metrics=("accuracy",), labels=("false", "true")),
    TaskSpec(name="race", benchmark="race", kind=MULTIPLE_CHOICE, dirname="RACE",
             splits={"train": "train", "dev": "dev", "test": "test"}, metrics=("accuracy",),
             labels=("A", "B", "C", "D"), num_choices=4, convert=_convert_race),
]}

# Spellings people use for the same task.
_ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli", "superglue_rte": "superglue-rte",
            "rte-superglue": "superglue-rte"}


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The registered task called ``name`` (case-insensitive; "SST-2" and "sst2" both work)."""
    if isinstance(name, TaskSpec):
        return name
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[key]


# ---------------------------------------------------------------------------------------------------- loading


def load_examples(task: str | TaskSpec, data: str | os.PathLike, split: str) -> list[Example]:
    """Read one split of ``task`` from ``data``: the task's directory (e.g. ``glue/SST-2``), a benchmark root that
    contains it (``glue/``), or a ``datasets`` name (GLUE only) when ``data`` is not an existing path."""
    spec = get_task(task)
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for task {spec.name}; it has {', '.join(spec.splits)}")
    root = Path(data)
    if not root.exists():
        return _load_hf(spec, str(data), split)
    if root.is_dir() and (root / spec.dirname).is_dir():
        root = root / spec.dirname
    path = root / spec.splits[split] if root.is_dir() else root
    if spec.benchmark == "race" and not path.exists() and path.with_suffix(".jsonl").is_file():
        path = path.with_suffix(".jsonl")
    if not path.exists():
        raise FileNotFoundError(f"split {split!r} of task {spec.name} not found: expected {path}")
    try:
        if spec.benchmark == "glue":
            examples = _read_glue_tsv(spec, path)
        elif path.is_dir():
            examples = _read_json_dir(spec, path)
        else:
            examples = _read_jsonl(spec, path)
    except UnicodeDecodeError as err:  # a bare codec error would not say which file
        raise ValueError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start} of the "
                         "decoded chunk); re-encode the file as UTF-8") from None
    if not examples:
        raise ValueError(f"{path}: no examples in split {split!r} of task {spec.name} (empty file?)")
    return examples


def _read_glue_tsv(spec: TaskSpec, path: Path) -> list[Example]:
    examples = []
    # utf-8-sig drops MRPC's byte-order mark; newline="" lets csv see the raw line ends.
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quotechar=None)
        ncols = spec.ncols
        if spec.header:
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file (task {spec.name} expects a header line)")
            ncols = len(header)
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line (e.g. a trailing newline)
            if len(row) != ncols:
                raise ValueError(f"{where}: expected {ncols} tab-separated columns for task {spec.name}, "
                                 f"found {len(row)}")
            text_b = row[spec.text_b_col] if spec.text_b_col is not None else None
            raw = row[spec.label_col]
            if spec.kind == REGRESSION:
                try:
                    label: float | int = float(raw)
                except ValueError:
                    raise ValueError(f"{where}: score {raw!r} is not a number") from None
                if not 0.0 <= label <= 5.0 or math.isnan(label):
                    raise ValueError(f"{where}: score {raw!r} is outside task {spec.name}'s range [0, 5]")
            else:
                label = spec.label_index(raw, where)
            examples.append(Example(row[spec.text_a_col], text_b, label, source=where))
    return examples


def _parse_json(text: str, where: str) -> dict:
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _read_jsonl(spec: TaskSpec, path: Path) -> list[Example]:
    assert spec.convert is not None
    examples = []
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                where = f"{path}:{lineno}"
                examples.extend(spec.convert(spec, _parse_json(line, where), where))
    return examples


def _read_json_dir(spec: TaskSpec, path: Path) -> list[Example]:
    assert spec.convert is not None
    examples = []
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".json")):
        where = f"{file}:1"
        examples.extend(spec.convert(spec, _parse_json(file.read_text(encoding="utf-8-sig"), where), where))
    return examples


def _load_hf(spec: TaskSpec, name: str, split: str) -> list[Example]:
    """Load a task from the Hugging Face hub by ``datasets`` name, e.g. ``nyu-mll/glue`` (GLUE tasks only)."""
    if spec.hf is None:
        raise FileNotFoundError(f"{name!r} is not an existing path, and task {spec.name} can only be read from "
                                "files (no datasets-name loader for it)")
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(f"{name!r} is not an existing path; to load it as a Hugging Face datasets name, "
                                "install the 'datasets' package (pip install datasets) and be online") from None
    hf_split = {"train": "train", "dev": "validation", "dev_mismatched": "validation_mismatched"}[split]
    if spec.name == "mnli" and split == "dev":
        hf_split = "validation_matched"
    try:
        ds = datasets.load_dataset(name, spec.hf[1], split=hf_split)
    except Exception as err:  # the hub raises many types (ConnectionError, HfHubHTTPError, ...)
        raise OSError(f"could not load datasets name {name!r} (config {spec.hf[1]!r}, split {hf_split!r}): {err}. "
                      "Offline? Pass a directory of the task's original files instead.") from err
    names = getattr(ds.features.get("label"), "names", None)
    examples = []
    for i, rec in enumerate(ds):
        where = f"datasets:{name}/{spec.hf[1]}[{hf_split}][{i}]"
        a = rec[spec.hf_fields[0]]
        b = rec[spec.hf_fields[1]] if len(spec.hf_fields) > 1 else None
        raw = rec["label"]
        if spec.kind == REGRESSION:
            label: float | int = float(raw)
        elif names is not None and all(n in spec.labels for n in names):
            label = spec.label_index(names[raw], where)  # ClassLabel names that are ours (MNLI, QNLI, RTE)
        else:
            label = spec.label_index(raw, where)  # index order equals the TSV's 0/1 (CoLA, SST-2, MRPC, ...)
        examples.append(Example(a, b, label, source=where))
    return examples


# ---------------------------------------------------------------------------------------------------- metrics


def compute_metrics(task: str | TaskSpec, predictions: Sequence | np.ndarray,
                    labels: Sequence | np.ndarray) -> dict[str, float]:
    """The task's metrics, as GLUE/SuperGLUE define them: ``accuracy``; ``f1`` (binary, positive class 1);
    ``f1_macro`` (CB: unweighted mean of per-class F1); ``mcc`` (Matthews correlation); ``pearson`` and
    ``spearman`` correlations. Predictions are class indices (or scores for regression)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    spec = get_task(task)
    preds, gold = np.asarray(predictions), np.asarray(labels)
    if preds.shape != gold.shape or preds.ndim != 1:
        raise ValueError(f"predictions {preds.shape} and labels {gold.shape} must be 1-D and of equal length")
    if len(gold) == 0:
        raise ValueError("no predictions to score")
    out: dict[str, float] = {}
    for m in spec.metrics:
        if m == "accuracy":
            out[m] = float(accuracy_score(gold, preds))
        elif m == "f1":
            out[m] = float(f1_score(gold, preds, pos_label=1, zero_division=0.0))
        elif m == "f1_macro":
            out[m] = float(f1_score(gold, preds, average="macro", labels=list(range(spec.num_labels)),
                                    zero_division=0.0))
        elif m == "mcc":
            out[m] = float(matthews_corrcoef(gold, preds))
        elif m in ("pearson", "spearman"):
            # A constant prediction has no correlation: report NaN (scipy's answer) without its warning.
            if np.ptp(preds) == 0 or np.ptp(gold) == 0:
                out[m] = float("nan")
            else:
                fn = pearsonr if m == "pearson" else spearmanr
                out[m] = float(fn(preds.astype(np.float64), gold.astype(np.float64))[0])
        else:  # pragma: no cover - the registry only names the metrics above
            raise ValueError(f"unknown metric {m!r}")
    return out


def primary_score(metrics: dict[str, float]) -> float:
    """One number to rank models by: the mean of the task's metrics (GLUE averages multi-metric tasks the same
    way); NaN (a constant regressor) ranks below everything."""
    values = [v for k, v in metrics.items() if k != "loss"]
    if not values or any(math.isnan(v) for v in values):
        return float("-inf")
    return float(np.mean(values))


def majority_baseline(task: str | TaskSpec, train: Sequence[Example], dev: Sequence[Example]) -> dict[str, float]:
    """Dev metrics of predicting the most frequent training label (regression: the training mean) for every dev
    example. For multiple choice: always the most frequent answer position."""
    spec = get_task(task)
    gold = np.array([e.label for e in dev])
    if spec.kind == REGRESSION:
        pred = np.full(len(dev), float(np.mean([e.label for e in train])))
    else:
        values, counts = np.unique([e.label for e in train], return_counts=True)
        pred = np.full(len(dev), int(values[np.argmax(counts)]))
    return compute_metrics(spec, pred, gold)
