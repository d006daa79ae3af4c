"""Model cards for the directories bortfast writes (issue 28): a ``README.md`` in the Hugging Face model card format
(YAML front matter, then Markdown) saying what the model is, what it was distilled from, how, what it keeps of the
teacher's quality, how fast it is, and how to load it.

The card is the first thing a user or a model hub reads, so it holds only what it is given or can read from the
directory itself: the architecture and parameter count come from ``config.json`` and the safetensors headers, the
figures from the caller's measured rows (:class:`QualityRow`, :class:`SpeedRow`); nothing is estimated. A card cites
the Bort paper (de Wynter & Perry 2020, "Optimal Subarchitecture Extraction For BERT", arXiv:2010.10499).

A card bortfast wrote carries :data:`CARD_MARKER` on the line after the front matter; :func:`write_model_card`
replaces such a card but refuses to replace any other ``README.md`` (a user's own) unless told to.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bortfast._base.io import atomic_open
from bortfast._base.version import __version__
from bortfast.space import PER_LAYER_KEY, Arch, PerLayerArch

__all__ = ["CARD_MARKER", "BORT_CITATION", "ModelCardInfo", "QualityRow", "SpeedRow", "is_bortfast_card",
           "render_model_card", "teacher_license", "write_model_card"]

# The line that marks a README.md as bortfast's own (an HTML comment: invisible on the hub). Delete it to keep edits.
CARD_MARKER = "<!-- bortfast model card: written by bortfast, which replaces it; delete this line to keep edits -->"

BORT_CITATION = """@article{dewynter2020optimal,
  title   = {Optimal Subarchitecture Extraction For BERT},
  author  = {de Wynter, Adrian and Perry, Daniel J.},
  journal = {arXiv preprint arXiv:2010.10499},
  year    = {2020},
  url     = {https://arxiv.org/abs/2010.10499}
}"""


@dataclass(frozen=True)
class QualityRow:
    """One measured quality figure of the student beside the teacher's on the same data."""

    metric: str  # e.g. "spearman", "accuracy", "cosine to teacher"
    split: str  # the data it was measured on: a split ("STS-B dev") or a file name
    teacher: float  # the teacher's value
    student: float  # the student's value
    higher_is_better: bool = True  # False for losses / perplexities: % kept is then teacher / student
    dataset: str | None = None  # a Hugging Face dataset id ("nyu-mll/glue"); rows with one go into model-index

    @property
    def kept_percent(self) -> float | None:
        """100 · student / teacher (teacher / student when lower is better); None when undefined."""
        num, den = (self.student, self.teacher) if self.higher_is_better else (self.teacher, self.student)
        return None if den == 0 else 100.0 * num / den


@dataclass(frozen=True)
class SpeedRow:
    """One measured speed-up of the student over the teacher."""

    engine: str  # e.g. "ONNX Runtime 1.32 fp32", "PyTorch 2.13 eager"
    batch: int  # sequences per call
    speedup: float  # teacher latency / student latency
    machine: str  # the CPU (model name, threads)
    date: str  # when it was measured (ISO date)
    seq_len: int | None = None  # tokens per sequence, when fixed
    teacher_ms: float | None = None  # the teacher's latency per call
    student_ms: float | None = None  # the student's latency per call


@dataclass
class ModelCardInfo:
    """What a card says beyond what the model directory itself holds. Every field is optional: a section with
    nothing to say says so ("not measured") rather than being guessed."""

    title: str | None = None  # the card's heading; default: the directory's name
    model_id: str | None = None  # how the usage examples name the model (a hub id or path); default: the dir name
    teacher_name: str | None = None  # the teacher's Hugging Face id: becomes ``base_model`` in the front matter
    teacher_path: str | None = None  # where the teacher was read from; its config.json gives its architecture
    license: str | None = None  # the front matter's licence id; None: the teacher's (:func:`teacher_license`), if any
    corpus: str | None = None  # what the student was distilled on, in words (name, size, language)
    steps: int | None = None  # distillation optimiser steps
    command: str | None = None  # the command that produced the directory
    onnx_file: str | None = None  # an ONNX export in the directory, relative to it (default: onnx/model.onnx if any)
    bortfast_version: str = __version__  # the bortfast that made it
    quality: Sequence[QualityRow] = field(default_factory=tuple)  # measured rows, in the order to show them
    speed: Sequence[SpeedRow] = field(default_factory=tuple)  # measured rows, in the order to show them
    extra_tags: Sequence[str] = field(default_factory=tuple)  # further front-matter tags (e.g. the task)
    notes: str | None = None  # a free Markdown paragraph placed after the description


# ------------------------------------------------------------------------------------------------- reading a dir
def _read_config(directory: Path) -> dict[str, Any]:
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(directory)!r} is not a model directory: no config.json")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{str(config_file)!r} must hold a JSON object, got {type(config).__name__}")
    return config


def _safetensors_params(directory: Path) -> int | None:
    """Parameters stored in the directory's safetensors files, read from their headers (no tensor is loaded);
    None when it has none."""
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        for name, entry in header.items():
            if name != "__metadata__":
                n = 1
                for dim in entry["shape"]:
                    n *= int(dim)
                total += n
    return total


def _front_matter_of(readme: Path) -> dict[str, Any]:
    """The YAML front matter of a model card (``---`` lines around it at the top); {} when it has none or it does
    not parse as a mapping."""
    import yaml  # a transformers dependency

    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---\n"):
        return {}
    head, sep, _ = text[4:].partition("\n---\n")
    try:
        meta = yaml.safe_load(head) if sep else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _teacher_readme(teacher: str) -> Path | None:
    """The teacher's own model card: ``README.md`` in its directory, or, for a hub id, the copy in the local
    Hugging Face cache (nothing is downloaded); None when neither exists."""
    local = Path(teacher) / "README.md"
    if local.is_file():
        return local
    if Path(teacher).exists():
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(teacher, "README.md")
    except Exception:  # not a valid repo id: there is no cached card to read
        return None
    return Path(cached) if isinstance(cached, str) and Path(cached).is_file() else None


def teacher_license(teacher: str | os.PathLike) -> dict[str, str]:
    """The licence fields of the teacher's model card front matter, to inherit: ``license`` and, for
    ``license: other``, its ``license_name`` and ``license_link``. {} when the teacher has no card or no licence."""
    readme = _teacher_readme(str(teacher))
    meta = _front_matter_of(readme) if readme is not None else {}
    fields = {key: meta[key] for key in ("license", "license_name", "license_link")
              if isinstance(meta.get(key), str) and meta[key].strip()}
    return fields if "license" in fields else {}


def _arch_of(config: dict[str, Any]) -> Arch | PerLayerArch:
    per_layer = PerLayerArch.from_config(config)
    return per_layer if per_layer is not None else Arch.from_config(config)


def _param_count(directory: Path, config: dict[str, Any]) -> tuple[int, bool]:
    """(parameters, exact): from the weights when the directory has safetensors, else the closed form."""
    counted = _safetensors_params(directory)
    if counted is not None:
        return counted, True
    classes = config.get("architectures") or []
    kind = "masked-lm" if any("MaskedLM" in c or "PreTraining" in c for c in classes) else "encoder+pooler"
    return _arch_of(config).param_count(kind), False


def _arch_text(arch: Arch | PerLayerArch) -> str:
    if isinstance(arch, PerLayerArch):
        return (f"per-layer widths `{arch.spec}`: {arch.layers} layers, hidden {arch.hidden}, heads per layer "
                f"{list(arch.heads)} ({arch.head_dim} dims each), FFN width per layer {list(arch.intermediate)}")
    return (f"⟨D, A, H, I⟩ = ⟨{arch.layers}, {arch.heads}, {arch.hidden}, {arch.intermediate}⟩: {arch.layers} "
            f"layers, {arch.heads} heads, hidden {arch.hidden}, FFN {arch.intermediate}")


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n:,}"


def _pipeline(config: dict[str, Any], sentence_transformers: bool) -> tuple[str, str]:
    """(pipeline tag, the transformers Auto class that loads it)."""
    classes = config.get("architectures") or []
    if any("SequenceClassification" in c for c in classes):
        return "text-classification", "AutoModelForSequenceClassification"
    if any("TokenClassification" in c for c in classes):
        return "token-classification", "AutoModelForTokenClassification"
    if sentence_transformers:
        return "sentence-similarity", "AutoModel"
    if any("MaskedLM" in c for c in classes):
        return "fill-mask", "AutoModelForMaskedLM"
    return "feature-extraction", "AutoModel"


# ------------------------------------------------------------------------------------------------- rendering
def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _front_matter(info: ModelCardInfo, library: str, pipeline_tag: str, name: str,
                  license_fields: dict[str, str]) -> list[str]:
    tags = ["bortfast", "bert", "distillation"]
    if library == "sentence-transformers":
        tags += ["sentence-transformers", "sentence-similarity", "feature-extraction"]
    else:
        tags.append(pipeline_tag)
    tags += [t for t in info.extra_tags if t not in tags]
    lines = ["---", f"library_name: {library}", f"pipeline_tag: {pipeline_tag}", "tags:"]
    lines += [f"- {_yaml_str(t)}" for t in dict.fromkeys(tags)]
    if info.teacher_name:
        lines.append(f"base_model: {_yaml_str(info.teacher_name)}")
    lines += [f"{key}: {_yaml_str(value)}" for key, value in license_fields.items()]
    indexed = [row for row in info.quality if row.dataset]
    if indexed:
        lines += ["model-index:", f"- name: {_yaml_str(name)}", "  results:"]
        for row in indexed:
            lines += [f"  - task: {{type: {_yaml_str(pipeline_tag)}}}",
                      f"    dataset: {{type: {_yaml_str(row.dataset)}, name: {_yaml_str(row.dataset)}, "
                      f"split: {_yaml_str(row.split)}}}",
                      f"    metrics: [{{type: {_yaml_str(row.metric)}, value: {float(row.student)!r}}}]"]
    return [*lines, "---"]


def _number(x: float) -> str:
    return f"{x:.4g}"


def _quality_section(rows: Sequence[QualityRow]) -> list[str]:
    if not rows:
        return ["Not measured: no quality figures were passed to this card."]
    out = ["| metric | data | teacher | student | kept |", "|---|---|---:|---:|---:|"]
    for r in rows:
        kept = r.kept_percent
        out.append(f"| {r.metric} | {r.split} | {_number(r.teacher)} | {_number(r.student)} | "
                   f"{'n/a' if kept is None else f'{kept:.1f} %'} |")
    if any(not r.higher_is_better for r in rows):
        out += ["", "For a metric where lower is better, *kept* is teacher / student."]
    return out


def _speed_section(rows: Sequence[SpeedRow]) -> list[str]:
    if not rows:
        return ["Not measured: no speed figures were passed to this card."]
    out = ["| engine | batch | seq len | teacher ms | student ms | speed-up | machine | date |",
           "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        def ms(x: float | None) -> str:
            return "" if x is None else f"{x:.2f}"
        out.append(f"| {r.engine} | {r.batch} | {'' if r.seq_len is None else r.seq_len} | {ms(r.teacher_ms)} | "
                   f"{ms(r.student_ms)} | {r.speedup:.2f}× | {r.machine} | {r.date} |")
    return out


def _usage_section(model_id: str, library: str, auto_class: str, per_layer: bool, onnx_file: str | None,
                   classifier: bool) -> list[str]:
    remote = ", trust_remote_code=True" if per_layer else ""
    out: list[str] = []
    if per_layer:
        out += ["Its layers differ in width, which stock `transformers` BERT cannot express: the directory ships its "
                "modeling code (`modeling_bortfast_perlayer.py`, named in `config.json`'s `auto_map`), so loading it "
                "needs `trust_remote_code=True`. Read that file before you trust it.", ""]
    if library == "sentence-transformers":
        out += ["With sentence-transformers:", "", "```python", "from sentence_transformers import SentenceTransformer",
                "", f"model = SentenceTransformer({model_id!r}{remote})",
                'embeddings = model.encode(["A sentence to embed.", "Another one."])', "```", ""]
        if onnx_file == "onnx/model.onnx":
            out += ["The ONNX export in `onnx/model.onnx` serves the same vectors through sentence-transformers' ONNX "
                    'backend (`pip install "sentence-transformers[onnx]"`; it needs `optimum`):', "", "```python",
                    f'model = SentenceTransformer({model_id!r}, backend="onnx"{remote})', "```", ""]
    out += ["With transformers:", "", "```python", f"from transformers import AutoTokenizer, {auto_class}", "",
            f"tokenizer = AutoTokenizer.from_pretrained({model_id!r})",
            f"model = {auto_class}.from_pretrained({model_id!r}{remote})", "```", ""]
    if onnx_file is not None:
        runtime_class = "Classifier" if classifier else "Encoder"
        call = 'model.predict(["A sentence to classify."])' if classifier else \
            'model.encode(["A sentence to embed."])  # the model\'s own pooling and normalisation'
        out += [f"With ONNX Runtime through bortfast (the file `{onnx_file}` embeds its tokenizer and uses ONNX "
                "Runtime's fused `com.microsoft` operators):", "", "```python", "import bortfast", "",
                f"model = bortfast.{runtime_class}({f'{model_id}/{onnx_file}'!r})", call, "```", ""]
    return out[:-1] if out and out[-1] == "" else out


def hub_id(teacher: str | None) -> bool:
    """Whether ``teacher`` reads as a Hugging Face hub id (``name`` or ``org/name``, not an existing path): a
    local directory's own id is unknown (its config's ``_name_or_path`` often names the model it started from)."""
    if not teacher or Path(teacher).expanduser().exists() or teacher.startswith((".", "/", "~")):
        return False
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", teacher) is not None


def render_model_card(model_dir: str | os.PathLike, info: ModelCardInfo | None = None) -> str:
    """The card's text for ``model_dir`` (front matter, :data:`CARD_MARKER`, Markdown), without writing it."""
    directory = Path(model_dir)
    info = info or ModelCardInfo()
    if info.teacher_name is None and hub_id(info.teacher_path):  # a teacher loaded by hub id names base_model
        info = dataclasses.replace(info, teacher_name=info.teacher_path)
    config = _read_config(directory)
    arch = _arch_of(config)
    params, exact = _param_count(directory, config)
    per_layer = config.get(PER_LAYER_KEY) is not None
    library = "sentence-transformers" if (directory / "modules.json").is_file() else "transformers"
    pipeline_tag, auto_class = _pipeline(config, library == "sentence-transformers")
    name = info.title or directory.name
    model_id = info.model_id or directory.name
    onnx_file = info.onnx_file
    if onnx_file is None and (directory / "onnx" / "model.onnx").is_file():
        onnx_file = "onnx/model.onnx"
    classes = config.get("architectures") or []

    teacher_desc = info.teacher_name or info.teacher_path
    if info.license:
        license_fields = {"license": info.license}
    else:  # inherited: a student is a derivative of its teacher's weights
        license_fields = teacher_license(info.teacher_path or info.teacher_name) if teacher_desc else {}
    lines = _front_matter(info, library, pipeline_tag, name, license_fields)
    lines += [CARD_MARKER, "", f"# {name}", ""]
    intro = (f"A smaller BERT{' sentence encoder' if library == 'sentence-transformers' else ''}"
             f"{f' distilled from `{teacher_desc}` by' if teacher_desc else ' made by'} "
             f"[bortfast](https://pypi.org/project/bortfast/): a sub-architecture of the teacher chosen for speed "
             f"and error (Bort, de Wynter & Perry 2020), initialised from the teacher's weights and trained to "
             f"match it.")
    lines += [intro, ""]
    if info.notes:
        lines += [info.notes, ""]

    lines += ["## Model", "", f"- Architecture: {_arch_text(arch)}",
              f"- Parameters: {_millions(params)}{'' if exact else ' (closed form; no safetensors weights found)'}",
              f"- Class: {', '.join(f'`{c}`' for c in classes) or 'not recorded'}",
              f"- Vocabulary: {arch.vocab_size} tokens, up to {arch.max_positions} positions", ""]

    lines += ["## Distilled from", ""]
    if teacher_desc is None:
        lines += ["Not recorded.", ""]
    else:
        if info.teacher_name:
            lines.append(f"- Teacher: [`{info.teacher_name}`](https://huggingface.co/{info.teacher_name})")
        if info.teacher_path and info.teacher_path != info.teacher_name:
            lines.append(f"- Read from: `{info.teacher_path}`")
        teacher_dir = Path(info.teacher_path) if info.teacher_path else None
        if teacher_dir is not None and (teacher_dir / "config.json").is_file():
            teacher_config = _read_config(teacher_dir)
            teacher_params, teacher_exact = _param_count(teacher_dir, teacher_config)
            lines += [f"- Teacher architecture: {_arch_text(_arch_of(teacher_config))}",
                      f"- Teacher parameters: {_millions(teacher_params)}{'' if teacher_exact else ' (closed form)'}"
                      f" — the student has {100.0 * params / teacher_params:.1f} % of them"]
        lines.append("")

    lines += ["## How it was made", "", f"- bortfast {info.bortfast_version}",
              f"- Distillation corpus: {info.corpus or 'not recorded'}",
              f"- Optimiser steps: {info.steps if info.steps is not None else 'not recorded'}"]
    if info.command:
        lines += ["- Command:", "", "  ```bash", f"  {info.command}", "  ```"]
    lines.append("")

    lines += ["## Quality kept", "", *_quality_section(info.quality), ""]
    lines += ["## Speed", "", *_speed_section(info.speed), ""]
    lines += ["## How to use it", "",
              *_usage_section(model_id, library, auto_class, per_layer, onnx_file,
                              pipeline_tag == "text-classification"), ""]
    # No date or absolute time: the same model and figures give the same card, byte for byte.
    lines += ["## Citation", "", "The method is Bort's:", "", "```bibtex", BORT_CITATION, "```"]
    return "\n".join(lines) + "\n"


def is_bortfast_card(path: str | os.PathLike) -> bool:
    """Whether the file at ``path`` carries :data:`CARD_MARKER` on a line of its own."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return any(line.strip() == CARD_MARKER for line in f)


def write_model_card(model_dir: str | os.PathLike, info: ModelCardInfo | None = None, *,
                     overwrite: bool = False) -> Path:
    """Write ``model_dir/README.md``, the model card of the model in ``model_dir`` (see :func:`render_model_card`),
    atomically; return its path. A ``README.md`` bortfast wrote (:data:`CARD_MARKER`) is replaced; any other one
    raises FileExistsError unless ``overwrite``. Raises ValueError when ``model_dir`` has no ``config.json``."""
    directory = Path(model_dir)
    path = directory / "README.md"
    text = render_model_card(directory, info)
    if path.exists() and not overwrite and not is_bortfast_card(path):
        raise FileExistsError(f"{str(path)!r} exists and bortfast did not write it (no model-card marker line); "
                              "pass overwrite=True to replace it")
    with atomic_open(path) as f:
        f.write(text)
    return path
