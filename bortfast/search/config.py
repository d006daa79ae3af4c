"""Settings of the search (:class:`SearchConfig`, also the CLI's options) and the types it is built on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bortfast._base.checks import check_int
from bortfast.space import Arch, ModelKind, PerLayerArch

LatencyProxy = Literal["kernel", "flops"]
ErrorFn = Callable[[Arch | PerLayerArch, Mapping[str, Any]], float]


@dataclass(frozen=True)
class SearchConfig:
    """Settings of :func:`extract` besides the teacher, corpus and space (also the CLI's options)."""

    # Defaults as measured on the demo (docs/results/search.md): 10 steps at 1e-4 rank inherited students (1e-3 undoes
    # the inheritance); FLOPs as î while the kernel's î moves between runs (issue 31), ORT decides speed in the checks.
    eps: int = 16  # ε: one pivot every eps positions of the p̂ order (1 = exhaustive)
    steps: int = 10  # s: optimiser steps per short training
    thetas: tuple[dict[str, Any], ...] = ({"lr": 1e-4},)  # Θ: keyword sets for short_train_error (lr, ...)
    latency: LatencyProxy = "flops"  # î proxy: FLOPs, or the fused C++ kernel's median latency on this CPU
    batch: int = field(default=1, metadata={  # B for î (latency / FLOPs)
        "flag": "latency-batch", "aliases": ("batch",), "help": "sequences per forward pass B that î (latency or "
                                                                "FLOPs) is measured at"})
    seq_len: int = field(default=128, metadata={  # L for î and the length of the corpus blocks the students train on
        "help": "tokens per sequence L: for î and for the corpus blocks the students train on"})
    train_batch_size: int = field(default=8, metadata={  # sequences per short-training step
        "flag": "batch-size", "aliases": ("train-batch-size",), "help": "sequences per short-training step"})
    heldout_batch_size: int = field(default=32, metadata={  # held-out sequences ê is measured on
        "help": "held-out sequences the error ê is measured on"})
    seed: int = 0  # seeds every student, the masking and the corpus split
    threads: int | None = field(default=None, metadata={"aliases": ("torch-threads",)})  # latency kernel threads
    param_kind: ModelKind = "encoder+pooler"  # which parameter count p̂ is (the paper's 56M for Bort)
    eps_small: float = 1e-12  # added to ê in W's denominator
    pareto_delta: float = 0.1  # δ of the approximate Pareto front
    max_blocks: int | None = None  # keep only this many corpus blocks (quick runs)
    overwrite: bool = False  # discard an existing journal / result in out_dir
    progress: bool = False  # tqdm bar over the trainings (rank 0)
    max_latency: float | None = field(default=None, metadata={  # user's budget on î (ms, or FLOPs): ξ* = lowest ê
        "flag": "max-latency-ms", "help": "latency budget on î (ms with --latency kernel, FLOPs with flops): ξ* = "
                                          "the lowest error within it"})
    min_speedup: float | None = field(default=None, metadata={  # user's floor on i(T)/î: ξ* = lowest ê ...
        "help": "speed floor (a ratio): ξ* = the lowest error among architectures at least this many times faster "
                "than the teacher by î"})
    max_error: float | None = field(default=None, metadata={  # user's quality floor as a ceiling on ê
        "help": "quality floor as a ceiling on the error ê (distillation loss): ξ* = the fastest within it"})
    init: str = field(default="inherit", metadata={  # short trainings start from the student cut out of T
        "choices": ("inherit", "random"), "help": "short trainings start from the student cut out of the teacher "
                                                  "(inherit) or from random weights (random: the paper's setting)"})
    unit: str = field(default="auto", metadata={  # what the short trainings learn from (as DistillConfig.unit)
        "choices": ("auto", "blocks", "sentences"), "help": "what the short trainings learn from and ê scores: "
        "packed token blocks (token-level distillation) or one corpus sentence per row (the sentence recipe: "
        "pooled cosine + in-batch relation to the teacher's sentence embedding); auto: sentences for an "
        "encoder-only teacher, blocks for a masked LM (what distill trains on by default)"})
    layers: str = field(default="importance", metadata={  # which teacher layers an inherited student keeps
        "choices": ("importance", "even", "first"), "help": "which teacher layers an inherited student keeps"})
    calibration_blocks: int = 128  # corpus blocks whose teacher activations rank the units to keep
    exclude_file: str | None = None  # text file of lines never trained on (held out for quality checks)
    per_layer: bool = field(default=False, metadata={  # Ξ = the knapsack frontier of per-layer widths (DESIGN.md §1)
        "help": "search per-layer widths: the knapsack DP proposes the frontier of per-layer head counts and FFN "
                "widths (under --max-latency-ms with --latency flops, or --min-speedup by FLOPs), and Algorithm 1 "
                "runs on it (--space is then unused)"})
    per_layer_hidden: tuple[int, ...] = field(default=(), metadata={  # empty: H_T, 3/4 H_T, 1/2 H_T
        "help": "hidden sizes (channels) of the per-layer space (none given: the teacher's, 3/4 and 1/2 of it)"})
    per_layer_points: int = 24  # frontier points kept per hidden size (evenly spaced), before the ε pivots
    per_layer_delta: float = 0.01  # δ of the knapsack FPTAS

    def __post_init__(self) -> None:
        if self.init not in ("inherit", "random"):
            raise ValueError(f"init must be 'inherit' or 'random', got {self.init!r}")
        if self.unit not in ("auto", "blocks", "sentences"):
            raise ValueError(f"unit must be 'auto', 'blocks' or 'sentences', got {self.unit!r}")
        if self.layers not in ("importance", "even", "first"):
            raise ValueError(f"layers must be 'importance', 'even' or 'first', got {self.layers!r}")
        for name in ("max_latency", "min_speedup", "max_error"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v)
                                  or v <= 0 or (name == "min_speedup" and v < 1)):
                raise ValueError(f"{name} must be a positive finite number{' >= 1' * (name == 'min_speedup')}, "
                                 f"got {v!r}")
        for name in ("eps", "steps", "batch", "seq_len", "train_batch_size", "heldout_batch_size",
                     "calibration_blocks"):
            check_int(name, getattr(self, name), 1, "an int >= 1")
        check_int("per_layer_points", self.per_layer_points, 1, "an int >= 1")
        if not (isinstance(self.per_layer_delta, float) and 0 < self.per_layer_delta < 1):
            raise ValueError(f"per_layer_delta must be in (0, 1), got {self.per_layer_delta!r}")
        object.__setattr__(self, "per_layer_hidden", tuple(int(h) for h in self.per_layer_hidden))
        if self.latency not in ("kernel", "flops"):
            raise ValueError(f"latency must be 'kernel' or 'flops', got {self.latency!r}")
        if not self.thetas:
            raise ValueError("thetas (the hyperparameter sets) is empty")
        object.__setattr__(self, "thetas", tuple(dict(t) for t in self.thetas))
