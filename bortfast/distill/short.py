"""ê(ξ) of Algorithm 1: a short distillation of a fresh student, scored on a fixed held-out batch.
"""

from __future__ import annotations

from typing import Any

from bortfast._base.checks import check_int
from bortfast._base.optim import TrainingStep
from bortfast.data.corpus import Corpus
from bortfast.data.sentences import attention_mask, trim
from bortfast.data.teacher import Teacher
from bortfast.distill.config import LossWeights, default_loss_weights
from bortfast.distill.loss import distillation_loss, evaluate, teacher_targets
from bortfast.distill.masking import _derived_seed, batch_indices, masker_for
from bortfast.distill.student import StudentInit, _trainable_module, build_student, teacher_importance
from bortfast.space import Arch


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
    init: StudentInit = "inherit",
    importance: Any = None,
    layers: Any = "importance",
) -> float:
    """ê(ξ) of Algorithm 1: train a fresh student (seeded) for ``steps`` steps by distillation from the teacher —
    the same loss, optimiser and schedule as :func:`distill` — and return the distillation loss on a fixed held-out
    batch (the first ``heldout_batch_size`` held-out rows, masking fixed by ``seed``). A corpus of sentence rows
    (``corpus.pad_id`` set, :func:`bortfast.data.load_sentences`) trains and scores over real tokens only, as
    :func:`distill` does on sentences; pass the sentence recipe's ``weights`` then. Deterministic for fixed
    inputs (and a fixed torch thread count); the global RNG state is left untouched. The student starts inherited
    from the teacher (``init="inherit"``; ``importance`` from :func:`teacher_importance`, measured here when not
    given) or at random (``init="random"``, the paper's setting)."""
    import torch

    steps, batch_size = check_int("steps", steps, 0), check_int("batch_size", batch_size)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if corpus.seq_len > teacher.max_seq_len:
        raise ValueError(f"corpus seq_len={corpus.seq_len} exceeds the teacher's max sequence length "
                         f"{teacher.max_seq_len}")
    weights = weights or default_loss_weights(teacher.kind)
    masker = masker_for(teacher.tokenizer, teacher.kind, weights.alpha)
    if init == "inherit" and importance is None:  # measured here (uncached); extract() measures it once
        importance = teacher_importance(teacher, corpus, None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_student(arch, teacher, seed=seed, dropout=dropout, init=init, importance=importance,
                                layers=layers)
        module = _trainable_module(student, teacher, seed=seed)
        module.train()
        if steps:
            train_step = TrainingStep(module, lr=lr, total_steps=steps, warmup_steps=int(warmup_fraction * steps),
                                      weight_decay=weight_decay, max_grad_norm=max_grad_norm)
            for step in range(steps):
                rows = batch_indices(len(corpus.train), batch_size, step, seed=seed)
                batch = trim(corpus.train[rows], corpus.pad_id)
                mask = None if corpus.pad_id is None else attention_mask(batch, corpus.pad_id)
                inputs, labels = masker(batch, seed=_derived_seed(seed, step, 0))
                sel = labels != -100
                t_out = teacher_targets(teacher, inputs, sel, mask) if weights.beta or weights.embedding else None
                logits, hidden = module(inputs, sel, mask)
                loss, _, _ = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights, mask)
                train_step(loss)
        result = evaluate(module, teacher, corpus.heldout[:heldout_batch_size], masker, seed=seed,
                          batch_size=heldout_batch_size, max_batches=1, weights=weights, pad_id=corpus.pad_id)
    return float(result["loss"])
