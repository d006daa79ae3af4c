"""Task-specific distillation: a small student cut out of a *fine-tuned* teacher and trained on the task's data.

This is the second stage of TinyBERT (Jiao et al. 2020, §3.2 "task-specific distillation") and the recipe of
DistilBERT's SQuAD variant and Minitron's (Muralidharan et al. 2024) prune-then-distil chain, for the teacher most
users hold: a classifier they already serve.

* Student: ⟨D, A, H, I⟩ inherited from the teacher with :func:`bortfast.distill.inherit.inherit_into` (importance
  measured on the task's own training text), *and* its head: the pooler restricted to the kept hidden channels
  (rows and columns), the classifier to the kept input columns (CoLA's extra hidden layer: rows and columns). With
  the teacher's own shape the student is the teacher, exactly.
* Loss: ``(1 − α)·KD + α·hard + hidden_weight·hidden``. KD is τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ))
  (Hinton et al. 2015) for classification and multiple choice, MSE to the teacher's score for regression; hard is
  the task loss on the gold labels; hidden is the MSE between each student layer's output and the teacher's
  output at the layer it was inherited from, restricted to the kept channels (no projection needed: inheritance
  keeps the teacher's channel basis). Teacher logits are computed once, before training (the teacher is in eval
  mode, so they do not change), and so are the hidden targets while they fit in ``teacher_cache_gib`` (float16);
  past that (or for multiple choice) the teacher runs per batch.
* Batches are grouped by length by default (``group_by_length``): SST-2's phrases pad to ~3x fewer tokens.
* Augmentation (optional): Agora's word-level perturbation generator (:class:`bortfast.finetune.agora.WordPerturber`)
  makes ``augment_copies`` variants of each training example; the teacher's outputs are their only targets (they
  carry no gold label, so the hard term skips them). TinyBERT's augmentation replaces words with BERT-MLM / GloVe
  neighbours; a fine-tuned teacher has no MLM head, hence the word generator.
* Dev is scored after each epoch; the best epoch is kept in ``out_dir/best`` in the format ``bortfast finetune``
  writes (``save_pretrained`` safetensors + tokenizer + label names), so ``bortfast export`` exports it and
  :class:`bortfast.runtime.Classifier` serves it.

The module sits in :mod:`bortfast.finetune` (not :mod:`bortfast.distill`) because it uses the fine-tuning heads and
encoding and Agora's generator; the package layers point one way (distill < finetune).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bortfast._base.io import write_json
from bortfast._base.optim import TrainingStep
from bortfast.data.tasks import (
    MULTIPLE_CHOICE,
    REGRESSION,
    Example,
    TaskSpec,
    compute_metrics,
    get_task,
    load_examples,
    majority_baseline,
    primary_score,
)
from bortfast.distill.inherit import InheritPlan, check_fits, compute_importance, copy_linear, inherit_into
from bortfast.finetune.agora import WordPerturber
from bortfast.finetune.config import TaskDistillConfig
from bortfast.finetune.encode import (
    Encoded,
    batch_order,
    collate,
    decide,
    encode,
    example_lengths,
    load_tokenizer,
    predict,
)
from bortfast.finetune.train import fit_seq_len, save_checkpoint, seed_everything, subsample
from bortfast.models.config import HEAD_CLASSES, head_kind, load_config
from bortfast.models.heads import load_finetuned
from bortfast.models.perlayer import bert_encoder
from bortfast.space import Arch

# ---------------------------------------------------------------------------------------------------- teacher


def check_teacher(teacher_dir: str, spec: TaskSpec) -> None:
    """ValueError unless ``teacher_dir`` holds a head fine-tuned for ``spec`` (kind and label count), naming both."""
    config = load_config(teacher_dir)
    have = head_kind(config)
    want = f"a {spec.kind} head with num_labels={spec.num_labels}"
    if have is None:
        raise ValueError(f"teacher {teacher_dir} is not fine-tuned: it has no classification head (architectures "
                         f"{config.architectures}); task {spec.name} needs {want}. Fine-tune it first "
                         "(bortfast finetune)")
    if have != spec.kind or (spec.kind != MULTIPLE_CHOICE and config.num_labels != spec.num_labels):
        raise ValueError(f"teacher {teacher_dir} has a {have} head with num_labels={config.num_labels}; task "
                         f"{spec.name} needs {want}")


def is_finetuned(model_dir: str | os.PathLike) -> bool:
    """Whether ``model_dir`` is a local checkpoint with a fine-tuned head (classification, regression or multiple
    choice); False for bare encoders, MLM checkpoints and hub ids."""
    path = Path(model_dir) / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return raw.get("model_type") == "bert" and bool(set(raw.get("architectures") or []) & set(HEAD_CLASSES))


def calibration_batches(data: Encoded, kind: str, pad_id: int, batch_size: int = 16) -> list[tuple]:
    """(input_ids (B, T), attention_mask (B, T)) batches of encoded task text for the importance measurement."""
    out = []
    for start in range(0, len(data.labels), batch_size):
        batch = collate(data, range(start, min(start + batch_size, len(data.labels))), pad_id, kind)
        ids, mask = batch["input_ids"], batch["attention_mask"]
        out.append((ids.view(-1, ids.shape[-1]), mask.view(-1, mask.shape[-1])))  # choices flattened: (B·C, T)
    return out


# ---------------------------------------------------------------------------------------------------- student


def _copy_head(student: nn.Module, teacher: nn.Module, hidden: torch.Tensor) -> None:
    """The classifier restricted to the kept hidden channels (the pooler is copied by inherit_into)."""
    s_head, t_head = student.classifier, teacher.classifier
    if isinstance(t_head, nn.Sequential):  # CoLA's head: Linear(H, H) -> GELU -> Dropout -> Linear(H, labels)
        copy_linear(s_head[0], t_head[0], hidden, hidden)
        copy_linear(s_head[3], t_head[3], None, hidden)
    else:
        copy_linear(s_head, t_head, None, hidden)


def inherit_task_student(teacher: nn.Module, arch: Arch, importance: Any, *, layers: str = "importance",
                         seed: int = 0) -> tuple[nn.Module, InheritPlan]:
    """A student of ``teacher``'s class (its head, labels, problem type) and of shape ``arch``, with encoder,
    pooler and classifier cut out of the teacher's weights. The global RNG is left untouched."""
    check_fits(arch, teacher.config)
    config = copy.deepcopy(teacher.config)
    config.hidden_size, config.num_hidden_layers = arch.hidden, arch.layers
    config.num_attention_heads, config.intermediate_size = arch.heads, arch.intermediate
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = type(teacher)(config)
    if bert_encoder(teacher).pooler is None or bert_encoder(student).pooler is None:
        raise ValueError("task distillation needs a teacher with a pooler (BertForSequenceClassification / "
                         "BertForMultipleChoice pool the first token)")
    plan = inherit_into(student, teacher, importance, layers)
    with torch.no_grad():
        _copy_head(student, teacher, torch.as_tensor(plan.hidden))
    student.config.bortfast_inherit = {"teacher_layers": plan.layers, "hidden": plan.hidden, "rule": layers,
                                       "task_distill": True}
    return student, plan


# ---------------------------------------------------------------------------------------------------- loss


def logit_kd_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, temperature: float) -> torch.Tensor:
    """τ²·KL(softmax(z_t/τ) ‖ softmax(z_s/τ)) over (B, labels) logits; MSE over (B,) regression scores."""
    if kind == REGRESSION:
        return F.mse_loss(student, teacher)
    t = temperature
    return F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * t * t


def hard_loss(student: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor, kind: str) -> torch.Tensor:
    """The task loss on the gold labels of the ``labelled`` rows (0 when the batch has none)."""
    if not bool(labelled.any()):
        return student.new_zeros(())
    if kind == REGRESSION:
        return F.mse_loss(student[labelled], labels[labelled])
    return F.cross_entropy(student[labelled], labels[labelled])


def hidden_kd_loss(student_states: Sequence[torch.Tensor], teacher_states: Sequence[torch.Tensor],
                   plan: InheritPlan, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the embeddings and every student layer of the MSE to the teacher's output at the inherited layer,
    on the kept channels and the real (unpadded) tokens."""
    keep = torch.as_tensor(plan.hidden)
    valid = mask.bool().view(-1)  # (B·T,)
    losses = []
    for s_i, t_i in _layer_pairs(plan):
        s = student_states[s_i].reshape(-1, student_states[s_i].shape[-1])[valid]  # (N, H_S)
        t = teacher_states[t_i].reshape(-1, teacher_states[t_i].shape[-1])[valid][:, keep]  # (N, H_S)
        losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()


def _layer_pairs(plan: InheritPlan) -> list[tuple[int, int]]:
    """(student, teacher) hidden_states indices matched by hidden KD; index 0 is the embeddings."""
    return [(0, 0)] + [(i + 1, li + 1) for i, li in enumerate(plan.layers)]


@torch.no_grad()
def teacher_targets(teacher: nn.Module, data: Encoded, plan: InheritPlan, kind: str, pad_id: int,
                    batch_size: int = 64) -> tuple[np.ndarray, list[torch.Tensor]]:
    """The teacher's outputs on ``data`` (as :func:`predict` returns them) and, per example, its hidden-KD targets:
    the hidden states at the matched layers, on the kept channels and the real tokens, as a (layers + 1, T_i, H_S)
    float16 tensor, all from one pass. The teacher is in eval mode, so these are the targets :func:`hidden_kd_loss`
    computes per batch (up to float16 rounding). Not for multiple choice."""
    if kind == MULTIPLE_CHOICE:
        raise ValueError("teacher_targets: multiple choice runs the teacher per batch")
    teacher.eval()
    keep = torch.as_tensor(plan.hidden)
    t_idx = [t for _, t in _layer_pairs(plan)]
    order = np.argsort(example_lengths(data, kind), kind="stable")
    targets: list[torch.Tensor] = [torch.empty(0)] * len(data.labels)
    logits = None
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = collate(data, index.tolist(), pad_id, kind)
        out = _forward(teacher, batch, True)
        if logits is None:
            logits = np.empty((len(order), out.logits.shape[-1]), dtype=np.float32)
        logits[index] = out.logits.float().numpy()
        stacked = torch.stack([out.hidden_states[t][..., keep] for t in t_idx], 1).half()  # (B, layers+1, T, H_S)
        for row, i in enumerate(index.tolist()):
            targets[i] = stacked[row, :, :len(data.input_ids[i])].clone()
    assert logits is not None
    return (logits[:, 0] if kind == REGRESSION else logits), targets


def cached_hidden_kd_loss(student_states: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                          plan: InheritPlan, mask: torch.Tensor) -> torch.Tensor:
    """:func:`hidden_kd_loss` against the batch's :func:`teacher_targets` (in batch order)."""
    valid = mask.bool().view(-1)
    losses = []
    for j, (s_i, _) in enumerate(_layer_pairs(plan)):
        s = student_states[s_i].reshape(-1, student_states[s_i].shape[-1])[valid]  # (N, H_S), row-major (B, T)
        t = torch.cat([x[j] for x in targets]).float()  # (N, H_S), the same order
        losses.append(F.mse_loss(s, t))
    return torch.stack(losses).mean()


def targets_fit(data: Encoded, plan: InheritPlan, kind: str, budget_gib: float) -> bool:
    """Whether :func:`teacher_targets` of ``data`` take at most ``budget_gib`` GiB (never for multiple choice)."""
    if kind == MULTIPLE_CHOICE or budget_gib <= 0:
        return False
    tokens = int(example_lengths(data, kind).sum())
    return tokens * (len(plan.layers) + 1) * len(plan.hidden) * 2 <= budget_gib * 2**30


# ---------------------------------------------------------------------------------------------------- data


def augment(examples: Sequence[Example], spec: TaskSpec, copies: int, mask_prob: float,
            seed: int) -> list[Example]:
    """``copies`` perturbed variants of each example (Agora's word generator), without labels and without
    variants equal to their source. Multiple choice perturbs the context only."""
    if copies == 0:
        return []
    gen = WordPerturber(mask_prob, seed)
    sources = [e for e in examples for _ in range(copies)]
    new_a = gen.perturb([e.text_a for e in sources])
    pair = spec.kind != MULTIPLE_CHOICE and sources[0].text_b is not None
    new_b = gen.perturb([e.text_b or "" for e in sources]) if pair else [e.text_b for e in sources]
    return [dataclasses.replace(e, text_a=a, text_b=b, label=None, source=f"augmented from {e.source}")
            for e, a, b in zip(sources, new_a, new_b) if a and (a, b) != (e.text_a, e.text_b)]


def _labelled(data: Encoded, kind: str) -> np.ndarray:
    return data.labels != -100 if kind != REGRESSION else ~np.isclose(data.labels, -100.0)


def _forward(model: nn.Module, batch: dict[str, torch.Tensor], hidden: bool) -> Any:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 token_type_ids=batch["token_type_ids"], output_hidden_states=hidden)


# ---------------------------------------------------------------------------------------------------- training


@dataclasses.dataclass
class _Run:
    """Everything one training run uses."""

    student: nn.Module
    teacher: nn.Module
    plan: InheritPlan
    spec: TaskSpec
    train: Encoded
    labelled: torch.Tensor  # (N,) bool: rows with a gold label
    teacher_logits: torch.Tensor  # (N, labels) / (N,) regression / (N, choices)
    dev: Encoded
    pad_id: int
    config: TaskDistillConfig
    targets: list[torch.Tensor] | None = None  # hidden KD: the teacher's targets per example, when cached


def _batch_loss(run: _Run, index: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
    cfg, kind = run.config, run.spec.kind
    batch = collate(run.train, index, run.pad_id, kind)
    use_hidden = cfg.hidden_weight > 0
    out = _forward(run.student, batch, use_hidden)
    logits = out.logits[:, 0] if kind == REGRESSION else out.logits  # (B,) or (B, labels)
    kd = logit_kd_loss(logits, run.teacher_logits[index], kind, cfg.temperature)
    hard = hard_loss(logits, batch["labels"], run.labelled[index], kind)
    loss = (1 - cfg.alpha) * kd + cfg.alpha * hard
    parts = {"kd": kd.item(), "hard": hard.item()}
    if use_hidden:
        mask = batch["attention_mask"]
        if run.targets is not None:
            hid = cached_hidden_kd_loss(out.hidden_states, [run.targets[i] for i in index], run.plan, mask)
        else:
            with torch.no_grad():
                t_states = _forward(run.teacher, batch, True).hidden_states
            hid = hidden_kd_loss(out.hidden_states, t_states, run.plan, mask)
        loss = loss + cfg.hidden_weight * hid
        parts["hidden"] = hid.item()
    return loss, {"loss": loss.item(), **parts}


def _dev_metrics(run: _Run) -> dict[str, float]:
    outputs = predict(run.student, run.dev, run.spec.kind, run.pad_id, run.config.eval_batch_size)
    return compute_metrics(run.spec, decide(outputs, run.spec.kind), run.dev.labels)


def train_student(run: _Run, on_improve: Any = None) -> dict[str, Any]:
    """Distil ``run.student`` for the configured epochs, score dev after each epoch and load the best epoch's
    weights back. ``on_improve(student, epoch, metrics)`` is called whenever an epoch is the best so far."""
    cfg = run.config
    n = len(run.train.labels)
    total = math.ceil(n / cfg.batch_size) * cfg.epochs
    step = TrainingStep(run.student, lr=cfg.lr, total_steps=total, warmup_steps=int(cfg.warmup_ratio * total),
                        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm, adam_eps=1e-6)
    order_rng = np.random.default_rng(cfg.seed)
    lengths = example_lengths(run.train, run.spec.kind)
    history: list[dict] = []
    best: dict[str, Any] = {"score": -math.inf, "epoch": -1, "metrics": {}, "state": None}
    bar = tqdm(total=total, desc=f"distil {run.spec.name}", disable=not cfg.progress, leave=False)
    for epoch in range(cfg.epochs):
        run.student.train()
        sums: dict[str, float] = {}
        for index in batch_order(lengths, cfg.batch_size, order_rng, cfg.group_by_length):
            loss, parts = _batch_loss(run, index)
            step(loss)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.update(1)
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
        metrics = _dev_metrics(run)
        batches = math.ceil(n / cfg.batch_size)
        history.append({"epoch": epoch, **{f"train_{k}": v / batches for k, v in sums.items()}, **metrics})
        score = primary_score(metrics)
        if score > best["score"] or best["state"] is None:
            best.update(score=score, epoch=epoch, metrics=metrics, state=copy.deepcopy(run.student.state_dict()))
            if on_improve is not None:
                on_improve(run.student, epoch, metrics)
    bar.close()
    run.student.load_state_dict(best["state"])
    return {"history": history, "best_epoch": best["epoch"], "dev": best["metrics"]}


# ---------------------------------------------------------------------------------------------------- entry point


def _cut(cfg: TaskDistillConfig, spec: TaskSpec, train: Sequence[Example]) -> tuple[nn.Module, nn.Module,
                                                                                      InheritPlan, Any, int]:
    """(student, teacher, plan, tokenizer, calibration tokens): the student cut out of the fine-tuned teacher,
    units ranked by the teacher's activations on ``calibration_examples`` of the training text."""
    arch = Arch.parse(cfg.arch)
    tokenizer = load_tokenizer(cfg.teacher)
    teacher = load_finetuned(cfg.teacher).eval()
    teacher.requires_grad_(False)
    calib = encode(subsample(train, cfg.calibration_examples, cfg.seed), tokenizer, spec, cfg.max_seq_len)
    batches = calibration_batches(calib, spec.kind, tokenizer.pad_token_id)
    importance = compute_importance(teacher, batches, progress=cfg.progress)
    student, plan = inherit_task_student(teacher, arch, importance, layers=cfg.layers, seed=cfg.seed)
    return student, teacher, plan, tokenizer, importance.tokens


def save_inherited_student(config: TaskDistillConfig, path: str | os.PathLike) -> InheritPlan:
    """Cut the student out of the fine-tuned teacher (as :func:`distill_task` does) and save it, untrained, to
    ``path`` in ``bortfast finetune``'s format: the start for plain fine-tuning or Agora of the same student."""
    spec = get_task(config.task)
    cfg = fit_seq_len(config, load_config(config.teacher))
    check_teacher(cfg.teacher, spec)
    train = subsample(load_examples(spec, cfg.data, "train"), cfg.max_train_examples, cfg.seed)
    student, _, plan, tokenizer, _ = _cut(cfg, spec, train)
    save_checkpoint(student, tokenizer, path)
    return plan


def _prepare(cfg: TaskDistillConfig, spec: TaskSpec) -> tuple[_Run, Any, dict[str, Any]]:
    """Load the teacher and the data, cut the student out of the teacher, and compute the teacher's targets."""
    check_teacher(cfg.teacher, spec)
    train_all = load_examples(spec, cfg.data, "train")
    dev = subsample(load_examples(spec, cfg.data, "dev"), cfg.max_eval_examples, cfg.seed)
    train = subsample(train_all, cfg.max_train_examples, cfg.seed)
    seed_everything(cfg.seed)
    student, teacher, plan, tokenizer, calibration_tokens = _cut(cfg, spec, train)
    pad = tokenizer.pad_token_id
    extra = augment(train, spec, cfg.augment_copies, cfg.augment_mask_prob, cfg.seed)
    data = encode(train + extra, tokenizer, spec, cfg.max_seq_len)
    dev_data = encode(dev, tokenizer, spec, cfg.max_seq_len)
    cache = cfg.hidden_weight > 0 and targets_fit(data, plan, spec.kind, cfg.teacher_cache_gib)
    if cache:
        outputs, targets = teacher_targets(teacher, data, plan, spec.kind, pad, cfg.eval_batch_size)
    else:
        outputs, targets = predict(teacher, data, spec.kind, pad, cfg.eval_batch_size), None
    teacher_logits = torch.from_numpy(outputs)
    teacher_dev = compute_metrics(spec, decide(predict(teacher, dev_data, spec.kind, pad, cfg.eval_batch_size),
                                               spec.kind), dev_data.labels)
    run = _Run(student=student, teacher=teacher, plan=plan, spec=spec, train=data,
               labelled=torch.from_numpy(_labelled(data, spec.kind)), teacher_logits=teacher_logits, dev=dev_data,
               pad_id=pad, config=cfg, targets=targets)
    info = {"n_train": len(train), "n_augmented": len(extra), "n_dev": len(dev), "teacher_dev": teacher_dev,
            "majority_baseline_dev": majority_baseline(spec, train_all, dev), "calibration_tokens": calibration_tokens,
            "inherit": plan.to_json(), "teacher_targets_cached": cache}
    return run, tokenizer, info


def distill_task(config: TaskDistillConfig) -> dict[str, Any]:
    """Distil the fine-tuned ``config.teacher`` into a ``config.arch`` student on ``config.task``; keep the best
    epoch in ``out_dir/best`` and write ``out_dir/results.json``. Returns the results (dev metrics under
    ``"dev"``, the teacher's under ``"teacher_dev"``)."""
    spec = get_task(config.task)
    cfg = fit_seq_len(config, load_config(config.teacher))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run, tokenizer, info = _prepare(cfg, spec)
    out = Path(cfg.out_dir)
    t0 = time.perf_counter()
    outcome = train_student(run, on_improve=lambda m, e, metrics: save_checkpoint(m, tokenizer, out / "best"))
    results = {"task": spec.name, "teacher": cfg.teacher, "data": cfg.data, "method": "task_distill",
               "arch": cfg.arch, "config": dataclasses.asdict(cfg), **info, **outcome,
               "train_wall_seconds": time.perf_counter() - t0, "wall_seconds": time.perf_counter() - wall0,
               "cpu_seconds": time.process_time() - cpu0, "checkpoint": str(out / "best")}
    write_json(out / "results.json", results)
    return results
