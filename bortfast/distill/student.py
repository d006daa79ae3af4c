"""The student ξ: a ``transformers`` BertForMaskedLM with the teacher's vocabulary, and the trainable module
(student plus, for an encoder-only teacher of another width, a learned projection H_s → H_t).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bortfast._base.checks import check_int
from bortfast.space import Arch, PerLayerArch

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch



from bortfast.data.corpus import Corpus
from bortfast.data.teacher import Teacher

StudentInit = Literal["inherit", "random"]


# --------------------------------------------------------------------------------------------------------- student
def check_arch_matches_teacher(arch: Arch | PerLayerArch, teacher: Teacher) -> None:
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


def student_arch(arch: Arch | PerLayerArch | str | Sequence[int], teacher: Teacher) -> Arch | PerLayerArch:
    """``arch`` (an Arch, ``"D,A,H,I"`` or a 4-tuple; or a PerLayerArch / its ``"H=..;d=..;A=..;I=.."`` spec) with
    the teacher's vocabulary/positions/token types."""
    t = teacher.arch
    tables = dict(vocab_size=t.vocab_size, max_positions=t.max_positions, type_vocab_size=t.type_vocab_size)
    if isinstance(arch, str) and "=" in arch:
        arch = PerLayerArch.parse(arch)
    if isinstance(arch, PerLayerArch):
        return PerLayerArch(arch.hidden, arch.head_dim, arch.heads, arch.intermediate, **tables)
    if isinstance(arch, Arch):
        d, a, h, i = arch.tuple
    elif isinstance(arch, str):
        d, a, h, i = Arch.parse(arch).tuple
    else:
        d, a, h, i = arch
    t = teacher.arch
    return Arch(d, a, h, i, vocab_size=t.vocab_size, max_positions=t.max_positions,
                type_vocab_size=t.type_vocab_size)


def build_student(arch: Arch | PerLayerArch, teacher: Teacher, *, seed: int, dropout: float = 0.1,
                  init: StudentInit = "random", importance: Any = None, layers: Any = "importance") -> Any:
    """A ``BertForMaskedLM`` of shape ``arch`` with the teacher's vocabulary: freshly initialised (``init="random"``,
    the paper's from-scratch setting) or cut out of the teacher (``init="inherit"``, :mod:`bortfast.distill.inherit`,
    needs the teacher's ``importance``). Seeded; the global torch RNG is left untouched."""
    import torch
    from transformers import BertForMaskedLM

    check_arch_matches_teacher(arch, teacher)
    tok = teacher.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    if isinstance(arch, PerLayerArch):
        return _build_per_layer_student(arch, teacher, seed=seed, dropout=dropout, init=init, importance=importance,
                                        layers=layers, pad=pad)
    if init == "inherit":
        from bortfast.distill.inherit import inherit_student

        if importance is None:
            raise ValueError("init='inherit' needs the teacher's importance (bortfast.distill.teacher_importance)")
        return inherit_student(arch, teacher.model, importance, layers=layers, seed=seed, pad_token_id=pad,
                               hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if init != "random":
        raise ValueError(f"init must be 'inherit' or 'random', got {init!r}")
    config = arch.to_bert_config(
        pad_token_id=pad,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        architectures=["BertForMaskedLM"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForMaskedLM(config)
    return model


def _build_per_layer_student(arch: PerLayerArch, teacher: Teacher, *, seed: int, dropout: float, init: StudentInit,
                             importance: Any, layers: Any, pad: int) -> Any:
    from bortfast.distill.perlayer import inherit_per_layer
    from bortfast.models.perlayer import build_per_layer_model

    drop = dict(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    if init == "inherit":
        if importance is None:
            raise ValueError("init='inherit' needs the teacher's importance (bortfast.distill.teacher_importance)")
        return inherit_per_layer(arch, teacher.model, importance, teacher_layers=layers, seed=seed,
                                 pad_token_id=pad, **drop)
    if init != "random":
        raise ValueError(f"init must be 'inherit' or 'random', got {init!r}")
    config = arch.to_bert_config(pad_token_id=pad, architectures=["BertForMaskedLM"], **drop)
    return build_per_layer_model(config, "BertForMaskedLM", seed=seed)


def teacher_importance(teacher: Teacher, corpus: Corpus, cache_dir: str | os.PathLike | None, *,
                       n_blocks: int = 128, progress: bool = False) -> Any:
    """The teacher's unit importance on the first ``n_blocks`` training blocks of ``corpus`` (forward passes
    only), cached as ``cache_dir/importance-KEY.npz`` (KEY: teacher, weights, corpus, calibration size)."""
    from bortfast.distill.inherit import importance_cached, importance_key

    check_int("calibration n_blocks", n_blocks)
    blocks = corpus.train[:n_blocks]
    if len(blocks) == 0:
        raise ValueError("the corpus has no training blocks to calibrate importance on")
    key = importance_key(teacher.name, teacher.vocab_fingerprint, teacher.model, corpus.fingerprint, len(blocks))
    cache = None if cache_dir is None else Path(cache_dir) / f"importance-{key}.npz"
    return importance_cached(teacher.model, blocks, cache, progress=progress)


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
                kept = (getattr(student.config, "bortfast_inherit", None) or {}).get("hidden")
                if kept is not None:  # inherited: start as "put each kept channel back where the teacher has it"
                    from bortfast.distill.inherit import selection_projection

                    selection_projection(self.projection, kept)

        def forward(self, input_ids: torch.Tensor, masked: torch.Tensor,
                    attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
            # The MLM head runs on the masked positions only: the loss needs nothing else, and the vocabulary
            # projection is most of a small model's cost (the head is position-wise, so this is exact).
            seq = self.student.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B,L,H_s)
            logits = self.student.cls(seq[masked])  # (N, V)
            hidden = None
            if teacher.kind == "hidden":
                hidden = seq if self.projection is None else self.projection(seq)  # (B, L, H_t)
            return logits, hidden

    return StudentWithProjection()
