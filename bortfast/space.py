"""Architectures and search spaces: the tuple xi = <D, A, H, I> of the Bort paper (de Wynter & Perry 2020, §2).

An :class:`Arch` is one BERT encoder shape; a :class:`SearchSpace` enumerates the valid ones from value lists.
The exact parameter count and forward FLOPs come from the C++ cost model (``bortfast._core``); the tests and
benchmarks compare it with the plain-Python ``param_count_reference`` and ``encoder_flops_reference`` of
``tests/reference.py``, which compute the formulas below.

Parameter count (BertModel, token-type embeddings, no pooler)::

    p = (V + S + T) * H + 2H + D * (4H^2 + 2HI + 9H + I)

plus ``H^2 + H`` for the pooler, or ``H^2 + 3H + V`` for BertForMaskedLM's head (transform dense + LayerNorm +
decoder bias; the decoder weight is tied to the word embeddings).

FLOPs of one encoder forward for B sequences of L tokens (a multiply-add is 2 FLOPs; matmuls only)::

    flops = D * (2*B*L*(4H^2 + 2HI) + 4*B*L^2*H)

i.e. the Q, K, V and attention-output projections, the two FFN matmuls, and the attention scores Q K^T and
context P V (2*B*L^2*H each, summed over heads). Bias adds, softmax, LayerNorm and GELU are not counted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bortfast import _core
from bortfast._base.checks import check_int_type, check_positive, is_int

ModelKind = Literal["encoder", "encoder+pooler", "masked-lm"]

BERT_VOCAB_SIZE = 30522
BERT_MAX_POSITIONS = 512
BERT_TYPE_VOCAB = 2


@dataclass(frozen=True, order=True)
class Arch:
    """One BERT encoder shape. Hashable, ordered, validated on construction."""

    layers: int  # D: number of encoder layers
    heads: int  # A: attention heads per layer
    hidden: int  # H: hidden size (must be divisible by heads)
    intermediate: int  # I: feed-forward inner size
    vocab_size: int = BERT_VOCAB_SIZE  # V: fixed by the teacher's tokenizer
    max_positions: int = BERT_MAX_POSITIONS  # S: position-embedding table size
    type_vocab_size: int = BERT_TYPE_VOCAB  # token-type (segment) table size

    def __post_init__(self) -> None:
        for name in ("layers", "heads", "hidden", "intermediate", "vocab_size", "max_positions",
                     "type_vocab_size"):
            label = f"Arch.{name}"
            object.__setattr__(self, name, check_positive(label, check_int_type(label, getattr(self, name))))
        if self.hidden % self.heads != 0:
            raise ValueError(
                f"Arch hidden={self.hidden} is not divisible by heads={self.heads} "
                f"(hidden % heads = {self.hidden % self.heads})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def tuple(self) -> tuple[int, int, int, int]:
        """``(layers, heads, hidden, intermediate)``."""
        return (self.layers, self.heads, self.hidden, self.intermediate)

    def __str__(self) -> str:
        return f"<{self.layers}, {self.heads}, {self.hidden}, {self.intermediate}>"

    @classmethod
    def parse(cls, text: str, **kwargs: int) -> Arch:
        """Parse ``"D,A,H,I"`` (commas or x), e.g. ``Arch.parse("4,8,1024,768")``."""
        parts = text.replace("x", ",").replace("<", "").replace(">", "").split(",")
        try:
            values = [int(p.strip()) for p in parts]
        except ValueError:
            raise ValueError(f"architecture must be 'layers,heads,hidden,intermediate', got {text!r}") from None
        if len(values) != 4:
            raise ValueError(f"architecture must have 4 integers (layers,heads,hidden,intermediate), got {text!r}")
        return cls(*values, **kwargs)

    @classmethod
    def from_config(cls, config: Any) -> Arch:
        """The architecture of a ``transformers`` BERT-style config (or its ``to_dict()``)."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        missing = [k for k in ("num_hidden_layers", "num_attention_heads", "hidden_size", "intermediate_size",
                               "vocab_size") if get(k) is None]
        if missing:
            raise ValueError(f"config is not a BERT-style encoder config: missing {missing}")
        return cls(
            layers=get("num_hidden_layers"),
            heads=get("num_attention_heads"),
            hidden=get("hidden_size"),
            intermediate=get("intermediate_size"),
            vocab_size=get("vocab_size"),
            max_positions=get("max_position_embeddings", BERT_MAX_POSITIONS),
            type_vocab_size=get("type_vocab_size", BERT_TYPE_VOCAB) or 1,
        )

    def to_bert_config(self, **overrides: Any) -> Any:
        """A ``transformers.BertConfig`` with this shape (extra keyword arguments override fields)."""
        from transformers import BertConfig

        kwargs: dict[str, Any] = dict(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=self.max_positions,
            type_vocab_size=self.type_vocab_size,
        )
        kwargs.update(overrides)
        return BertConfig(**kwargs)

    def param_count(self, kind: ModelKind = "encoder+pooler") -> int:
        """Exact trainable parameters of the matching ``transformers`` model (C++ cost model)."""
        return int(param_counts([self], kind)[0])

    def flops(self, batch: int = 1, seq_len: int = 128) -> int:
        """FLOPs of one encoder forward (see the module docstring for the formula)."""
        return int(encoder_flops([self], batch, seq_len)[0])


def _archs_array(archs: Iterable[Arch] | np.ndarray) -> np.ndarray:
    if isinstance(archs, np.ndarray):
        return archs
    return np.array([a.tuple for a in archs], dtype=np.int64).reshape(-1, 4)


def _shared_vocab(archs: Sequence[Arch]) -> tuple[int, int, int]:
    keys = {(a.vocab_size, a.max_positions, a.type_vocab_size) for a in archs}
    if len(keys) > 1:
        raise ValueError(f"architectures disagree on (vocab_size, max_positions, type_vocab_size): {sorted(keys)}")
    return keys.pop() if keys else (BERT_VOCAB_SIZE, BERT_MAX_POSITIONS, BERT_TYPE_VOCAB)


def param_counts(
    archs: Sequence[Arch] | np.ndarray,
    kind: ModelKind = "encoder+pooler",
    *,
    vocab_size: int | None = None,
    max_positions: int | None = None,
    type_vocab_size: int | None = None,
) -> np.ndarray:
    """Exact parameter counts (int64) for many architectures at once, computed in C++.

    ``archs`` is a sequence of :class:`Arch` (sharing vocabulary sizes) or an int64 ``(n, 4)`` array of
    ``(layers, heads, hidden, intermediate)``, in which case the vocabulary sizes default to BERT's.
    """
    if isinstance(archs, np.ndarray):
        v, s, t = BERT_VOCAB_SIZE, BERT_MAX_POSITIONS, BERT_TYPE_VOCAB
    else:
        archs = list(archs)
        v, s, t = _shared_vocab(archs)
    return _core.param_counts(
        _archs_array(archs),
        vocab_size if vocab_size is not None else v,
        max_positions if max_positions is not None else s,
        type_vocab_size if type_vocab_size is not None else t,
        kind,
    )


def encoder_flops(archs: Sequence[Arch] | np.ndarray, batch: int = 1, seq_len: int = 128) -> np.ndarray:
    """Encoder-forward FLOPs (int64) for many architectures at once, computed in C++."""
    return _core.encoder_flops(_archs_array(archs), int(batch), int(seq_len))


def _unique_sorted(values: Iterable[int], name: str) -> tuple[int, ...]:
    out = []
    for v in values:
        if not (is_int(v) and v > 0):
            raise ValueError(f"SearchSpace.{name} must hold positive ints, got {v!r}")
        out.append(int(v))
    if not out:
        raise ValueError(f"SearchSpace.{name} is empty")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class SearchSpace:
    """The finite set Xi of valid architectures: the product of the value lists, keeping hidden % heads == 0."""

    layers: tuple[int, ...]
    heads: tuple[int, ...]
    hidden: tuple[int, ...]
    intermediate: tuple[int, ...]
    vocab_size: int = BERT_VOCAB_SIZE
    max_positions: int = BERT_MAX_POSITIONS
    type_vocab_size: int = BERT_TYPE_VOCAB
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        for dim in ("layers", "heads", "hidden", "intermediate"):
            object.__setattr__(self, dim, _unique_sorted(getattr(self, dim), dim))
        if not self.archs():
            raise ValueError(
                f"SearchSpace has no valid architecture: no hidden in {self.hidden} is divisible by a head count "
                f"in {self.heads}"
            )

    def archs(self) -> list[Arch]:
        """Every valid architecture, in (layers, heads, hidden, intermediate) order."""
        return list(self)

    def __iter__(self) -> Iterator[Arch]:
        for d, a, h, i in itertools.product(self.layers, self.heads, self.hidden, self.intermediate):
            if h % a == 0:
                yield Arch(d, a, h, i, self.vocab_size, self.max_positions, self.type_vocab_size)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def as_array(self) -> np.ndarray:
        """int64 ``(n, 4)`` array of (layers, heads, hidden, intermediate), same order as :meth:`archs`."""
        return _archs_array(self.archs())

    @property
    def maximum(self) -> Arch:
        """The maximum point: the largest value of every dimension (the teacher, for :meth:`below`)."""
        return Arch(max(self.layers), max(self.heads), max(self.hidden), max(self.intermediate),
                    self.vocab_size, self.max_positions, self.type_vocab_size)

    @classmethod
    def bert_paper(cls) -> SearchSpace:
        """The published Bort search space: 300 valid architectures (de Wynter & Perry 2020, §3)."""
        return cls(
            layers=(2, 4, 6, 8, 10, 12),
            heads=(4, 8, 12, 16),
            hidden=(512, 768, 1024),
            intermediate=(256, 512, 768, 1024, 3072),
            name="bert-paper",
        )

    @classmethod
    def below(cls, teacher_config: Any) -> SearchSpace:
        """Sub-architectures of a ``transformers`` BERT-style config; its maximum point is the teacher.

        Layers take 1/6 ... 6/6 of the teacher's depth, heads 1/4 ... 4/4 of its heads, hidden sizes
        1/4 ... 4/4 of its width (rounded to a multiple of 8, then kept only where divisible by the heads),
        intermediate sizes 1/8, 1/4, 1/2, 3/4 and 1 of its FFN width. Vocabulary and positions are the teacher's.
        """
        t = Arch.from_config(teacher_config)

        def scaled(value: int, fractions: Sequence[float], multiple: int = 1) -> set[int]:
            out = {max(multiple, int(round(value * f / multiple)) * multiple) for f in fractions}
            out.add(value)
            return out

        hidden = scaled(t.hidden, (0.25, 0.5, 0.75, 1.0), multiple=8 if t.hidden % 8 == 0 else 1)
        return cls(
            layers=tuple(scaled(t.layers, [k / 6 for k in range(1, 7)])),
            heads=tuple(scaled(t.heads, (0.25, 0.5, 0.75, 1.0))),
            hidden=tuple(hidden),
            intermediate=tuple(scaled(t.intermediate, (0.125, 0.25, 0.5, 0.75, 1.0))),
            vocab_size=t.vocab_size,
            max_positions=t.max_positions,
            type_vocab_size=t.type_vocab_size,
            name="below-teacher",
        )

    @classmethod
    def preset(cls, name: str) -> SearchSpace:
        if name == "bert-paper":
            return cls.bert_paper()
        raise ValueError(f"unknown search-space preset {name!r}; known: 'bert-paper'")

    def table(self, batch: int = 1, seq_len: int = 128, kind: ModelKind = "encoder+pooler") -> list[dict]:
        """One row per architecture: shape, parameters and FLOPs (computed in C++ for the whole space)."""
        archs = self.archs()
        arr = _archs_array(archs)
        params = _core.param_counts(arr, self.vocab_size, self.max_positions, self.type_vocab_size, kind)
        flops = _core.encoder_flops(arr, int(batch), int(seq_len))
        return [
            {"layers": a.layers, "heads": a.heads, "hidden": a.hidden, "intermediate": a.intermediate,
             "params": int(p), "flops": int(f)}
            for a, p, f in zip(archs, params, flops)
        ]


# ------------------------------------------------------------------------------------------------- per-layer widths
PER_LAYER_KEY = "bortfast_per_layer"  # BertConfig attribute (and config.json key) holding the per-layer widths


def _positive_ints(values: Any, name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"PerLayerArch.{name} must be a sequence of ints, got {values!r}")
    out = []
    for layer, v in enumerate(values):
        label = f"PerLayerArch.{name}[{layer}]"
        out.append(check_positive(label, check_int_type(label, v)))
    return tuple(out)


@dataclass(frozen=True, order=True)
class PerLayerArch:
    """A BERT encoder whose layers differ in width: layer l keeps ``heads[l]`` attention heads of ``head_dim``
    dims each and ``intermediate[l]`` FFN neurons; every layer shares the hidden size H (DESIGN.md §1, "The dynamic
    programme"; CoFi, Xia et al. 2022). The uniform ⟨D, A, H, I⟩ is the case heads = (H/head_dim,)·D and
    intermediate = (I,)·D (:meth:`as_uniform`). Hashable, ordered, validated on construction.

    Parameters per layer (w_l = heads[l]·head_dim is the attention width)::

        p_l = 4·H·w_l + 3·w_l + 2·H·I_l + I_l + 6H        (Q, K, V, O with biases; FFN; two LayerNorms)

    FLOPs per layer for B sequences of L tokens: ``2·B·L·(4·H·w_l + 2·H·I_l) + 4·B·L²·w_l``. Both reduce to
    :class:`Arch`'s formulas when the layers are uniform and w_l = H.
    """

    hidden: int  # H, shared by every layer (the residual stream)
    head_dim: int  # dims per head (a student keeps the teacher's: pruned heads are whole teacher heads)
    heads: tuple[int, ...]  # heads kept in each layer, 1 <= heads[l] <= hidden // head_dim
    intermediate: tuple[int, ...]  # FFN neurons kept in each layer
    vocab_size: int = BERT_VOCAB_SIZE
    max_positions: int = BERT_MAX_POSITIONS
    type_vocab_size: int = BERT_TYPE_VOCAB

    def __post_init__(self) -> None:
        for name in ("hidden", "head_dim", "vocab_size", "max_positions", "type_vocab_size"):
            label = f"PerLayerArch.{name}"
            object.__setattr__(self, name, check_positive(label, check_int_type(label, getattr(self, name))))
        object.__setattr__(self, "heads", _positive_ints(self.heads, "heads"))
        object.__setattr__(self, "intermediate", _positive_ints(self.intermediate, "intermediate"))
        if len(self.heads) != len(self.intermediate):
            raise ValueError(f"PerLayerArch has {len(self.heads)} head counts {list(self.heads)} but "
                             f"{len(self.intermediate)} FFN widths {list(self.intermediate)}: one of each per layer")
        if not self.heads:
            raise ValueError("PerLayerArch needs at least one layer, got empty heads and intermediate")
        if self.hidden % self.head_dim != 0:
            raise ValueError(f"PerLayerArch hidden={self.hidden} is not divisible by head_dim={self.head_dim}")
        too_many = [(layer, a) for layer, a in enumerate(self.heads) if a > self.max_heads]
        if too_many:
            raise ValueError(f"PerLayerArch layers {[la for la, _ in too_many]} keep {[a for _, a in too_many]} heads,"
                             f" more than hidden/head_dim = {self.hidden}/{self.head_dim} = {self.max_heads}")

    @property
    def layers(self) -> int:
        return len(self.heads)

    @property
    def max_heads(self) -> int:
        """Heads of a full-width layer, H / head_dim (the config's ``num_attention_heads``)."""
        return self.hidden // self.head_dim

    @property
    def attention_widths(self) -> tuple[int, ...]:
        return tuple(a * self.head_dim for a in self.heads)

    @property
    def spec(self) -> str:
        """The parseable text form, e.g. ``"H=192;d=32;A=6,4;I=768,512"`` (see :meth:`parse`)."""
        return (f"H={self.hidden};d={self.head_dim};A={','.join(map(str, self.heads))};"
                f"I={','.join(map(str, self.intermediate))}")

    def __str__(self) -> str:
        return f"<H={self.hidden}, d={self.head_dim}, A={list(self.heads)}, I={list(self.intermediate)}>"

    @classmethod
    def parse(cls, text: str, **kwargs: int) -> PerLayerArch:
        """Parse ``"H=192;d=32;A=6,4;I=768,512"`` (hidden, head size, heads per layer, FFN width per layer)."""
        fields: dict[str, str] = {}
        for part in text.strip().strip("<>").split(";"):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in ("H", "d", "A", "I") or key.strip() in fields:
                raise ValueError(f"per-layer architecture must be 'H=HIDDEN;d=HEAD_DIM;A=a1,a2,...;I=i1,i2,...', "
                                 f"got {text!r}")
            fields[key.strip()] = value
        if set(fields) != {"H", "d", "A", "I"}:
            raise ValueError(f"per-layer architecture {text!r} lacks {sorted({'H', 'd', 'A', 'I'} - set(fields))}")
        try:
            hidden, head_dim = int(fields["H"]), int(fields["d"])
            heads = [int(v) for v in fields["A"].split(",")]
            inter = [int(v) for v in fields["I"].split(",")]
        except ValueError:
            raise ValueError(f"per-layer architecture {text!r} must hold integers") from None
        return cls(hidden, head_dim, tuple(heads), tuple(inter), **kwargs)

    @classmethod
    def from_arch(cls, arch: Arch) -> PerLayerArch:
        """The uniform ⟨D, A, H, I⟩ as a per-layer architecture."""
        return cls(arch.hidden, arch.head_dim, (arch.heads,) * arch.layers, (arch.intermediate,) * arch.layers,
                   arch.vocab_size, arch.max_positions, arch.type_vocab_size)

    def as_uniform(self) -> Arch | None:
        """The equal :class:`Arch` when every layer is full-width and the same, else None."""
        if set(self.heads) != {self.max_heads} or len(set(self.intermediate)) != 1:
            return None
        return Arch(self.layers, self.max_heads, self.hidden, self.intermediate[0], self.vocab_size,
                    self.max_positions, self.type_vocab_size)

    @classmethod
    def from_config(cls, config: Any) -> PerLayerArch | None:
        """The per-layer architecture a ``transformers`` config records (``bortfast_per_layer``), or None."""
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        per = get(PER_LAYER_KEY)
        if per is None:
            return None
        if not isinstance(per, dict) or set(per) != {"heads", "intermediate"}:
            raise ValueError(f"config {PER_LAYER_KEY} must be {{'heads': [...], 'intermediate': [...]}}, got {per!r}")
        hidden, heads = get("hidden_size"), get("num_attention_heads")
        if len(per["heads"]) != get("num_hidden_layers"):
            raise ValueError(f"config has num_hidden_layers={get('num_hidden_layers')} but {PER_LAYER_KEY} lists "
                             f"{len(per['heads'])} layers: {per!r}")
        return cls(hidden, hidden // heads, tuple(per["heads"]), tuple(per["intermediate"]), get("vocab_size"),
                   get("max_position_embeddings", BERT_MAX_POSITIONS), get("type_vocab_size", BERT_TYPE_VOCAB) or 1)

    def config_fields(self) -> dict[str, Any]:
        """The BertConfig fields of this shape: the full-width layer plus ``bortfast_per_layer``."""
        return dict(hidden_size=self.hidden, num_hidden_layers=self.layers, num_attention_heads=self.max_heads,
                    intermediate_size=max(self.intermediate),
                    **{PER_LAYER_KEY: {"heads": list(self.heads), "intermediate": list(self.intermediate)}})

    def to_bert_config(self, **overrides: Any) -> Any:
        """A ``transformers.BertConfig`` of this shape (build the model with ``bortfast.build_per_layer_model``)."""
        from transformers import BertConfig

        kwargs: dict[str, Any] = dict(vocab_size=self.vocab_size, max_position_embeddings=self.max_positions,
                                      type_vocab_size=self.type_vocab_size, **self.config_fields())
        kwargs.update(overrides)
        return BertConfig(**kwargs)

    def layer_params(self) -> np.ndarray:
        """int64 (D,): parameters of each encoder layer."""
        return per_layer_params(self.hidden, np.array(self.attention_widths), np.array(self.intermediate))

    def param_count(self, kind: ModelKind = "encoder+pooler") -> int:
        """Exact trainable parameters of the matching ``transformers`` model (closed form, see the class doc)."""
        H, V = self.hidden, self.vocab_size
        base = (V + self.max_positions + self.type_vocab_size) * H + 2 * H + int(self.layer_params().sum())
        if kind == "encoder+pooler":
            return base + H * H + H
        if kind == "masked-lm":
            return base + H * H + 3 * H + V
        if kind != "encoder":
            raise ValueError(f"kind must be 'encoder', 'encoder+pooler' or 'masked-lm', got {kind!r}")
        return base

    def layer_flops(self, batch: int = 1, seq_len: int = 128) -> np.ndarray:
        """int64 (D,): FLOPs of each encoder layer's forward."""
        return per_layer_flops(self.hidden, np.array(self.attention_widths), np.array(self.intermediate),
                               batch, seq_len)

    def flops(self, batch: int = 1, seq_len: int = 128) -> int:
        """FLOPs of one encoder forward (matmuls only, as :meth:`Arch.flops`)."""
        return int(self.layer_flops(batch, seq_len).sum())


def per_layer_params(hidden: int, attention_width: Any, intermediate: Any) -> np.ndarray:
    """int64 parameters of an encoder layer of attention width w (heads · head_dim) and FFN width I, elementwise
    (see :class:`PerLayerArch`)."""
    H = np.int64(hidden)
    w, i = np.asarray(attention_width, dtype=np.int64), np.asarray(intermediate, dtype=np.int64)
    return 4 * H * w + 3 * w + 2 * H * i + i + 6 * H


def per_layer_flops(hidden: int, attention_width: Any, intermediate: Any, batch: int = 1,
                    seq_len: int = 128) -> np.ndarray:
    """int64 forward FLOPs of an encoder layer (attention width w, FFN width I) on B·L tokens, elementwise."""
    H, L = np.int64(hidden), np.int64(seq_len)
    w, i = np.asarray(attention_width, dtype=np.int64), np.asarray(intermediate, dtype=np.int64)
    tokens = np.int64(batch) * L
    return 2 * tokens * (4 * H * w + 2 * H * i) + 4 * tokens * L * w


def parse_arch(text: str, **kwargs: int) -> Arch | PerLayerArch:
    """``"D,A,H,I"`` → :class:`Arch`; ``"H=..;d=..;A=..;I=.."`` → :class:`PerLayerArch`."""
    return PerLayerArch.parse(text, **kwargs) if "=" in text else Arch.parse(text, **kwargs)
