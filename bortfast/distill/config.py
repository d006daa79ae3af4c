"""Settings of the distillation: :class:`DistillConfig` (saved beside every checkpoint) and :class:`LossWeights`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bortfast._base.checks import check_int, is_int
from bortfast.space import Arch, PerLayerArch, parse_arch

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    pass


HiddenLoss = Literal["mse", "cosine", "mse+cosine"]



@dataclass(frozen=True)
class LossWeights:
    alpha: float = 0.1  # weight of the student's own MLM loss
    beta: float = 0.5  # weight of the distillation term
    temperature: float = 2.0  # τ of the softened softmax (MLM teacher only)
    hidden_loss: HiddenLoss = "mse"  # distance for a hidden-state teacher
    embedding: float = 0.0  # γ: weight of the sentence-level terms (hidden teacher): pooled cosine + in-batch relation



def default_loss_weights(kind: str, alpha: float | None = None, **kw: Any) -> LossWeights:
    """alexa/bort's α = 0.1 for an MLM teacher; α = 0 for an encoder-only teacher, whose student has no trained
    MLM head to learn from (its MLM term outweighed the hidden-state term tenfold)."""
    # ê of an encoder-only teacher adds the token cosine distance: MSE alone ranked narrow students (H = 96) first,
    # which keep the least embedding quality (README, "Weight inheritance and quality"). Distillation itself keeps
    # MSE (DistillConfig.hidden_loss), measured 0.005 STS better.
    kw.setdefault("hidden_loss", "mse+cosine")
    return LossWeights(alpha=(0.1 if kind == "mlm" else 0.0) if alpha is None else alpha, **kw)


def resolve_unit(unit: str, kind: str) -> str:
    """``unit`` with "auto" resolved for a teacher of ``kind``: sentences for an encoder-only teacher (its pooled
    sentence embedding is the target), blocks for a masked LM. ValueError for sentences with a masked-LM teacher."""
    if unit == "sentences" and kind != "hidden":
        raise ValueError("unit='sentences' needs an encoder-only teacher (its pooled sentence embedding is the "
                         "target); a masked-LM teacher trains on unit='blocks'")
    if unit != "auto":
        return unit
    return "sentences" if kind == "hidden" else "blocks"


# --------------------------------------------------------------------------------------------------------- distill
@dataclass
class DistillConfig:
    """Everything :func:`distill` needs; saved as JSON beside every checkpoint."""

    teacher: str  # local transformers directory or hub id
    corpus: list[str]  # text files, directories of text files, or "hf:NAME[/CONFIG][:SPLIT]"
    arch: str  # student "D,A,H,I", or per-layer "H=..;d=..;A=a1,a2,..;I=i1,i2,.." (vocabulary from the teacher)
    out_dir: str = field(metadata={"flag": "out"})  # checkpoints/, final/, metrics.jsonl go here
    steps: int = 1000  # optimiser steps
    batch_size: int | None = None  # sequences per step per rank (global: × world size); None: 32 blocks, 64 sentences
    seq_len: int = 128  # tokens per packed block (or longest sentence row), [CLS] and [SEP] included
    unit: Literal["auto", "blocks", "sentences"] = field(default="auto", metadata={
        "help": "training rows: packed token blocks, or one corpus sentence each (the sentence-level recipe: "
                "pooled cosine + in-batch relation to the teacher's sentence embedding); auto: sentences for an "
                "encoder-only teacher, blocks for a masked LM"})
    lr: float | None = None  # peak learning rate (AdamW); None: 1e-4 on blocks, 3e-4 on sentences
    warmup: int = -1  # warm-up steps; -1 = 10% of steps
    weight_decay: float = 0.01  # AdamW decay, not applied to biases and LayerNorm
    max_grad_norm: float = 1.0  # gradient clipping
    alpha: float | None = None  # MLM weight; None: 0.1 for an MLM teacher (alexa/bort), 0 for an encoder-only one
    beta: float | None = None  # token-level distillation weight; None: 0.5 on blocks (alexa/bort), 0 on sentences
    temperature: float = 2.0  # τ (alexa/bort)
    hidden_loss: str = "mse"  # "mse", "cosine" or "mse+cosine" (token-level) for an encoder-only teacher
    embedding_loss: float | None = None  # γ: + γ·(pooled cosine + in-batch relation MSE); None: 1 on sentences, else 0
    mlm_probability: float = 0.15  # masking rate (80/10/10 replacement)
    dropout: float = 0.1  # student dropout
    heldout_fraction: float = 0.05  # share of blocks held out for evaluation
    max_blocks: int | None = None  # keep only this many blocks of the corpus (quick runs)
    max_sentences: int | None = None  # unit="sentences": keep only this many sentences (None: all)
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
    init: str = "inherit"  # "inherit": cut the student out of the teacher; "random": from scratch (the paper)
    layers: str = "importance"  # inherited layers: "importance" (block influence), "even", "first"
    calibration_blocks: int = 128  # corpus blocks whose teacher activations rank the units to keep
    exclude_file: str | None = None  # text file of lines never trained on (held out for quality checks)
    teacher_layers: list[int] | None = None  # inherited: the teacher layer of each student layer (overrides layers)

    def __post_init__(self) -> None:
        if isinstance(self.corpus, (str, os.PathLike)):
            self.corpus = [os.fspath(self.corpus)]
        self.corpus = [os.fspath(c) for c in self.corpus]
        self.out_dir = os.fspath(self.out_dir)
        self.teacher = os.fspath(self.teacher)
        if isinstance(self.arch, PerLayerArch):
            self.arch = self.arch.spec
        elif not isinstance(self.arch, str):
            self.arch = ",".join(str(v) for v in (self.arch.tuple if isinstance(self.arch, Arch) else self.arch))
        parse_arch(self.arch)  # validates
        if self.teacher_layers is not None:
            layers = list(self.teacher_layers)
            if any(not is_int(x) or x < 0 for x in layers) or \
                    len(set(layers)) != len(layers) or len(layers) != parse_arch(self.arch).layers:
                raise ValueError(f"DistillConfig.teacher_layers={self.teacher_layers!r} must name "
                                 f"{parse_arch(self.arch).layers} distinct teacher layers (ints >= 0), one per "
                                 f"student layer of {self.arch!r}")
            self.teacher_layers = sorted(int(x) for x in layers)
        for name in ("steps", "seq_len", "keep_last", "eval_batches", "log_every", "heldout_batch_size",
                     *(("batch_size",) if self.batch_size is not None else ())):
            setattr(self, name, check_int(f"DistillConfig.{name}", getattr(self, name), 0 if name == "steps" else 1,
                                          "a positive int"))
        for name in ("checkpoint_every", "eval_every"):
            setattr(self, name, check_int(f"DistillConfig.{name}", getattr(self, name), 0))
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"DistillConfig.lr must be positive, got {self.lr!r}")
        alpha = 0.1 if self.alpha is None else self.alpha
        beta, gamma = (0.0 if v is None else v for v in (self.beta, self.embedding_loss))
        if not gamma >= 0:
            raise ValueError(f"DistillConfig.embedding_loss must be >= 0, got {self.embedding_loss!r}")
        if alpha < 0 or not beta >= 0 or (self.beta is not None and self.embedding_loss is not None
                                           and alpha + beta + gamma == 0):
            raise ValueError(f"DistillConfig alpha={self.alpha}, beta={self.beta}, embedding_loss="
                             f"{self.embedding_loss}: need all >= 0, not all 0")
        if not self.temperature > 0:
            raise ValueError(f"DistillConfig.temperature must be positive, got {self.temperature!r}")
        if self.hidden_loss not in ("mse", "cosine", "mse+cosine"):
            raise ValueError(f"DistillConfig.hidden_loss must be 'mse', 'cosine' or 'mse+cosine', got "
                             f"{self.hidden_loss!r}")
        if self.unit not in ("auto", "blocks", "sentences"):
            raise ValueError(f"DistillConfig.unit must be 'auto', 'blocks' or 'sentences', got {self.unit!r}")
        if self.init not in ("inherit", "random"):
            raise ValueError(f"DistillConfig.init must be 'inherit' or 'random', got {self.init!r}")
        if self.layers not in ("importance", "even", "first"):
            raise ValueError(f"DistillConfig.layers must be 'importance', 'even' or 'first', got {self.layers!r}")
        self.calibration_blocks = check_int("DistillConfig.calibration_blocks", self.calibration_blocks)

    @property
    def loss_weights(self) -> LossWeights:
        """The weights for an MLM teacher (``alpha=None`` → 0.1); :meth:`loss_weights_for` knows the teacher."""
        return self.loss_weights_for("mlm")

    # batch_size / lr where None, per unit: blocks as before; sentences chosen on the STS-B train selection split
    # (docs/results/general-distillation.md, 2026-12-07)
    RECIPES: ClassVar[dict[str, dict[str, float]]] = {"blocks": {"batch_size": 32, "lr": 1e-4},
                                                      "sentences": {"batch_size": 64, "lr": 3e-4}}

    def resolved_for(self, kind: str) -> DistillConfig:
        """A copy with "auto" and the recipe's None settings resolved for a teacher of ``kind``."""
        unit = self.unit_for(kind)
        recipe = self.RECIPES[unit]
        return dataclasses.replace(self, unit=unit, batch_size=int(recipe["batch_size"]) if self.batch_size is None
                                   else self.batch_size, lr=recipe["lr"] if self.lr is None else self.lr)

    def unit_for(self, kind: str) -> str:
        """The training rows for a teacher of ``kind``: :func:`resolve_unit` of ``unit``."""
        return resolve_unit(self.unit, kind)

    def loss_weights_for(self, kind: str) -> LossWeights:
        """The loss weights for a teacher of ``kind``; β and γ left None take the recipe of :meth:`unit_for`:
        token-level KD on blocks (β 0.5, γ 0), the sentence-level terms alone on sentences (β 0, γ 1)."""
        sentences = self.unit_for(kind) == "sentences"
        beta = (0.0 if sentences else 0.5) if self.beta is None else self.beta
        gamma = (1.0 if sentences else 0.0) if self.embedding_loss is None else self.embedding_loss
        alpha = (0.1 if kind == "mlm" else 0.0) if self.alpha is None else self.alpha
        if alpha + beta + gamma == 0:
            raise ValueError(f"DistillConfig: alpha={alpha}, beta={beta}, embedding_loss={gamma} leave nothing to "
                             f"learn from a {kind!r} teacher")
        return default_loss_weights(kind, self.alpha, beta=beta, temperature=self.temperature,
                                    hidden_loss=self.hidden_loss, embedding=gamma)

    @property
    def warmup_steps(self) -> int:
        return int(0.1 * self.steps) if self.warmup < 0 else self.warmup


DistillCallback = Callable[[str, dict], None]
