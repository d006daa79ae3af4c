"""Full distillation pretraining (:func:`distill`): checkpoints written atomically every N steps (the last K
kept), exact resume (model, optimiser, scheduler, RNG states, data position), DDP under ``torchrun`` (gloo on CPU,
nccl on GPU), JSONL metrics and a progress bar on rank 0.
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bortfast._base import dist
from bortfast._base.io import append_jsonl, replace_dir, write_json
from bortfast._base.optim import TrainingStep
from bortfast.data.corpus import load_corpus, read_exclude_file
from bortfast.data.teacher import load_teacher
from bortfast.distill.checkpoint import (
    _checkpoint_dirs,
    _load_student,
    _rng_state,
    _save_model_dir,
    _set_rng_state,
    _torch_load_safe,
)
from bortfast.distill.config import DistillCallback, DistillConfig
from bortfast.distill.loss import _autocast, distillation_loss, evaluate, teacher_targets
from bortfast.distill.masking import _derived_seed, batch_indices, masker_for
from bortfast.distill.student import _trainable_module, build_student, student_arch, teacher_importance
from bortfast.space import Arch


def distill(config: DistillConfig, *, callbacks: Sequence[DistillCallback] = ()) -> Path:
    """Pretrain ``config.arch`` by distillation from ``config.teacher``; return the final checkpoint directory
    (``out_dir/final``: a ``BertForMaskedLM`` + tokenizer loadable with ``from_pretrained``).

    Runs as DDP when launched by ``torchrun`` (WORLD_SIZE > 1). Resumes from the newest checkpoint in
    ``out_dir/checkpoints`` (or ``resume_from``), refusing one made with another teacher vocabulary, architecture,
    sequence length or corpus. ``callbacks`` get ``(event, info)`` for events "log", "eval" and "checkpoint".
    """
    rank, world, local_rank = dist.launch_info()
    with dist.process_group(use_cuda=config.device != "cpu"):
        return _distill(config, callbacks, rank, world, local_rank)


def _distill(config: DistillConfig, callbacks: Sequence[DistillCallback], rank: int, world: int,
             local_rank: int) -> Path:
    import torch
    from safetensors.torch import load_file
    from torch.nn.parallel import DistributedDataParallel
    from tqdm.auto import tqdm

    distributed = world > 1

    barrier = dist.barrier
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
                         max_blocks=config.max_blocks, exclude=read_exclude_file(config.exclude_file))
    fingerprints = {"arch": list(arch.tuple) if isinstance(arch, Arch) else arch.spec, "vocab_size": arch.vocab_size,
                    "teacher_vocab": teacher.vocab_fingerprint,
                    "teacher_kind": teacher.kind, "seq_len": config.seq_len, "corpus": corpus.fingerprint,
                    "teacher_hidden": teacher.arch.hidden, "init": config.init,
                    **({"layers": config.teacher_layers or config.layers} if config.init == "inherit" else {})}

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
        importance = None
        if config.init == "inherit":
            from bortfast.distill.inherit import check_fits
            from bortfast.distill.perlayer import check_fits_per_layer

            # before the calibration passes: a clear error first
            if isinstance(arch, Arch):
                check_fits(arch, teacher.config)
            else:
                check_fits_per_layer(arch, teacher.config, config.teacher_layers)
            importance = teacher_importance(teacher, corpus, out, n_blocks=config.calibration_blocks,
                                            progress=config.progress and rank == 0)
        student = build_student(arch, teacher, seed=config.seed, dropout=config.dropout, init=config.init,
                                importance=importance, layers=config.teacher_layers or config.layers)
    module = _trainable_module(student, teacher, seed=config.seed)
    if resume_dir is not None and module.projection is not None:
        try:
            module.projection.load_state_dict(load_file(str(resume_dir / "projection.safetensors")))
        except Exception as err:
            raise ValueError(f"checkpoint {str(resume_dir)!r}: cannot load projection.safetensors ({err})") from None
    module.to(device).train()
    teacher.model.to(device)
    train_step = TrainingStep(module, lr=config.lr, total_steps=max(1, config.steps),
                              warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                              max_grad_norm=config.max_grad_norm)
    optimizer, scheduler = train_step.optimizer, train_step.scheduler
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
    weights = config.loss_weights_for(teacher.kind)
    masker = masker_for(teacher.tokenizer, teacher.kind, weights.alpha, config.mlm_probability)
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
        train_step(loss)
        done = step + 1
        tokens_since += inputs.numel() * world
        for k, v in zip(sums, (loss, mlm, kd)):
            sums[k] += v.item()
        n_sum += 1
        bar.update(1)
        if done % config.log_every == 0 or done == config.steps:
            now = time.perf_counter()
            if distributed:  # log the mean over ranks, not rank 0's share
                sums = dict(zip(sums, dist.mean_over_ranks(list(sums.values()), device=device)))
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
