"""Configuration dataclasses of fine-tuning and Agora (DESIGN.md §4), kept free of torch so the CLI can build its
options from them without importing torch."""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
from dataclasses import dataclass, field

from bortfast._base.checks import is_int
from bortfast.space import Arch


@dataclass
class FinetuneConfig:
    """Hyperparameters of one fine-tuning run (one θ in Agora's grid, plus the run's budget)."""

    learning_rate: float = field(default=2e-5, metadata={  # peak learning rate, reached at the end of warmup
        "flag": "lr", "aliases": ("learning-rate",), "help": "peak learning rate, reached at the end of warmup"})
    weight_decay: float = 0.01  # AdamW decoupled weight decay (not on biases / LayerNorm)
    warmup_ratio: float = 0.1  # fraction of all steps spent warming up linearly from 0
    batch_size: int = 16  # training examples per step
    epochs: int = 3  # passes over the training set; the dev set is scored after each
    max_seq_len: int = 128  # tokens per (pair of) segment(s), truncating the longest first
    seed: int = field(default=0, metadata={"help": "seeds torch / numpy / random and the data order"})
    max_train_examples: int | None = None  # subsample the training set (seeded) to this many examples
    max_eval_examples: int | None = None  # subsample the dev set (seeded) to this many examples
    heldout_fraction: float = field(default=0.1, metadata={  # the best epoch is chosen on this slice of train
        "help": "share of train held out to choose the best epoch on (dev is then only reported); 0: choose on dev, "
                "as alexa/bort's script does"})
    eval_batch_size: int = 64  # examples per forward pass when scoring
    max_grad_norm: float = 1.0  # global gradient-norm clip
    classifier_hidden_layer: bool | None = field(default=None, metadata={  # None: only for CoLA (paper)
        "help": "an extra hidden layer in the classification head (default: only for CoLA, as in the paper)"})
    classifier_dropout: float | None = field(default=None, metadata={  # None: the encoder's hidden_dropout_prob
        "help": "dropout probability of the head (default: the encoder's hidden dropout)"})
    group_by_length: bool = False  # batches of similar lengths (in random order; transformers' option)
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        checks = {
            "learning_rate": self.learning_rate > 0, "weight_decay": self.weight_decay >= 0,
            "warmup_ratio": 0 <= self.warmup_ratio <= 1, "batch_size": self.batch_size >= 1,
            "epochs": self.epochs >= 1, "max_seq_len": self.max_seq_len >= 8,
            "heldout_fraction": 0 <= self.heldout_fraction < 1, "eval_batch_size": self.eval_batch_size >= 1,
            "max_grad_norm": self.max_grad_norm > 0,
            "max_train_examples": self.max_train_examples is None or self.max_train_examples >= 1,
            "max_eval_examples": self.max_eval_examples is None or self.max_eval_examples >= 1,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid FinetuneConfig: {', '.join(bad)}")


@dataclass(frozen=True)
class Theta:
    """One fine-tuning hyperparameter set."""

    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    batch_size: int
    seed: int = 0


@dataclass
class AgoraConfig:
    """Agora's grid, its held-out split and its data expansion. ``finetune`` holds the per-run budget (epochs,
    sequence length, training subsample); its learning rate / decay / warmup / batch / seed are replaced by θ's."""

    # The grid of alexa/bort's README (it lists seeds 0..4; one seed keeps the default grid at 96 θ).
    learning_rates: tuple[float, ...] = field(default=(1e-4, 1e-5, 9e-6), metadata={
        "flag": "lrs", "aliases": ("learning-rates",), "help": "grid: peak learning rates"})
    weight_decays: tuple[float, ...] = field(default=(0.0, 10.0, 100.0, 350.0), metadata={
        "help": "grid: AdamW weight decays"})
    warmup_ratios: tuple[float, ...] = field(default=(0.35, 0.40, 0.45, 0.50), metadata={
        "help": "grid: fractions of all steps spent warming up"})
    batch_sizes: tuple[int, ...] = field(default=(8, 16), metadata={"help": "grid: training examples per step"})
    seeds: tuple[int, ...] = field(default=(0,), metadata={"help": "grid: random seeds of the runs"})
    max_thetas: int | None = None  # CPU scale-down: a seeded random sample of this many θ from the grid
    heldout_fraction: float = 0.1  # share of the (subsampled) training set held out for pruning
    replay: int = 1  # extra rounds with the final θ on the expanded data
    copies: int = 2  # perturbations generated per wrongly predicted training example
    max_new_per_round: int = 256  # cap on generated examples added per round
    mask_prob: float = 0.15  # masked-LM / word-dropout rate of the data-generating function
    regression_error: float = 1.0  # regression: |prediction - label| above this counts as "wrong"
    generator: str = field(default="auto", metadata={  # "auto" (MLM head if the checkpoint has one), "mlm", "words"
        "choices": ("auto", "mlm", "words"), "help": "data-generating function: the checkpoint's MLM head (auto: "
                                                     "when it has one), or word dropout"})
    seed: int = field(default=0, metadata={"help": "seeds the grid sampling, held-out split and expansion sampling"})
    finetune: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=3))

    def __post_init__(self) -> None:
        if isinstance(self.finetune, dict):  # from JSON
            self.finetune = FinetuneConfig(**self.finetune)
        for name in ("learning_rates", "weight_decays", "warmup_ratios", "batch_sizes", "seeds"):
            value = tuple(getattr(self, name))
            if not value:
                raise ValueError(f"AgoraConfig.{name} is empty; the grid needs at least one value per axis")
            setattr(self, name, value)
        checks = {"max_thetas": self.max_thetas is None or self.max_thetas >= 1,
                  "heldout_fraction": 0 < self.heldout_fraction < 1, "replay": self.replay >= 0,
                  "copies": self.copies >= 1, "max_new_per_round": self.max_new_per_round >= 0,
                  "mask_prob": 0 < self.mask_prob < 1, "regression_error": self.regression_error > 0,
                  "generator": self.generator in ("auto", "mlm", "words")}
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid AgoraConfig: {', '.join(bad)}")

    def grid(self) -> list[Theta]:
        """Θ: the full product, or a seeded sample of ``max_thetas`` of it (in grid order)."""
        full = [Theta(lr, wd, wu, bs, s) for lr, wd, wu, bs, s in itertools.product(
            self.learning_rates, self.weight_decays, self.warmup_ratios, self.batch_sizes, self.seeds)]
        if self.max_thetas is None or self.max_thetas >= len(full):
            return full
        keep = sorted(random.Random(self.seed).sample(range(len(full)), self.max_thetas))
        return [full[i] for i in keep]

    def run_config(self, theta: Theta) -> FinetuneConfig:
        return dataclasses.replace(self.finetune, learning_rate=theta.learning_rate,
                                   weight_decay=theta.weight_decay, warmup_ratio=theta.warmup_ratio,
                                   batch_size=theta.batch_size, seed=theta.seed, heldout_fraction=0.0)


@dataclass
class TaskDistillConfig:
    """Task-specific distillation (TinyBERT's second stage): a student ⟨D, A, H, I⟩ cut out of a *fine-tuned*
    teacher (encoder and head) and trained on the task's data against the teacher's outputs."""

    task: str  # registry name, e.g. "sst2"
    data: str  # the task's directory of original files (or a benchmark root that contains it)
    teacher: str  # a fine-tuned checkpoint directory (bortfast finetune's best/, or any BertFor* of the task)
    arch: str  # student "D,A,H,I"; must fit inside the teacher
    out_dir: str = field(metadata={"flag": "out"})  # best/ (the student, as bortfast finetune's) and results.json
    temperature: float = 2.0  # τ of the softened logits (classification / multiple choice)
    alpha: float = 0.5  # weight of the hard-label loss; (1 - alpha) weighs the logit KD term
    hidden_weight: float = 0.0  # weight of hidden-state KD (MSE to the teacher's kept channels, mapped layers)
    lr: float = 1e-4  # peak learning rate (AdamW, linear warmup then decay)
    weight_decay: float = 0.01  # AdamW decoupled decay, not on biases / LayerNorm
    warmup_ratio: float = 0.1  # fraction of all steps warming up
    batch_size: int = 32  # training examples per step
    epochs: int = 3  # passes over the (augmented) training set; dev scored after each
    max_seq_len: int = 128  # tokens per (pair of) segment(s)
    max_train_examples: int | None = None  # seeded subsample of the training split
    max_eval_examples: int | None = None  # seeded subsample of the dev split
    augment_copies: int = 0  # > 0: this many perturbed copies of each training example, labelled by the teacher
    augment_mask_prob: float = 0.15  # word-dropout rate of Agora's perturbation generator
    layers: str = "importance"  # inherited teacher layers: "importance", "even" or "first"
    calibration_examples: int = 256  # training examples whose teacher activations rank the units to keep
    eval_batch_size: int = 64  # examples per scoring forward pass
    max_grad_norm: float = 1.0  # global gradient-norm clip
    group_by_length: bool = True  # batches of similar lengths (in random order): far less padding
    teacher_cache_gib: float = 2.0  # hidden KD: keep the teacher's targets in memory up to this size (0 = never)
    seed: int = 0  # data order, subsamples, augmentation, dropout
    progress: bool = True  # tqdm progress bars

    def __post_init__(self) -> None:
        for name in ("data", "teacher", "out_dir"):
            setattr(self, name, os.fspath(getattr(self, name)))
        if not isinstance(self.arch, str):
            self.arch = ",".join(str(v) for v in (self.arch.tuple if isinstance(self.arch, Arch) else self.arch))
        Arch.parse(self.arch)  # validates: ValueError naming the bad value
        checks = {
            "temperature": self.temperature > 0, "alpha": 0 <= self.alpha <= 1,
            "hidden_weight": self.hidden_weight >= 0, "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0,
            "warmup_ratio": 0 <= self.warmup_ratio <= 1, "batch_size": _positive(self.batch_size),
            "epochs": _positive(self.epochs), "max_seq_len": _positive(self.max_seq_len) and self.max_seq_len >= 8,
            "max_train_examples": self.max_train_examples is None or _positive(self.max_train_examples),
            "max_eval_examples": self.max_eval_examples is None or _positive(self.max_eval_examples),
            "augment_copies": isinstance(self.augment_copies, int) and self.augment_copies >= 0,
            "augment_mask_prob": 0 < self.augment_mask_prob < 1,
            "layers": self.layers in ("importance", "even", "first"),
            "calibration_examples": _positive(self.calibration_examples),
            "eval_batch_size": _positive(self.eval_batch_size), "max_grad_norm": self.max_grad_norm > 0,
            "teacher_cache_gib": self.teacher_cache_gib >= 0,
        }
        bad = [f"{k}={getattr(self, k)!r}" for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid TaskDistillConfig: {', '.join(bad)}")
        if self.alpha == 1 and self.hidden_weight == 0:
            raise ValueError("invalid TaskDistillConfig: alpha=1 and hidden_weight=0 leave nothing to distil "
                             "(that is plain fine-tuning: bortfast finetune)")


def _positive(value: object) -> bool:
    return is_int(value) and value >= 1
