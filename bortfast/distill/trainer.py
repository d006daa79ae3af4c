"""Full distillation pretraining (:func:`distill`): checkpoints written atomically every N steps (the last K
kept), exact resume (model, optimiser, scheduler, RNG states, data position), DDP under ``torchrun`` (gloo on CPU,
nccl on GPU), JSONL metrics and a progress bar on rank 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bortfast._base import dist
from bortfast._base.io import append_jsonl, replace_dir, write_json
from bortfast._base.optim import TrainingStep
from bortfast.data.corpus import Corpus, load_corpus, read_exclude_file
from bortfast.data.sentences import attention_mask, load_sentences, trim
from bortfast.data.teacher import Teacher, load_teacher
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
from bortfast.space import Arch, PerLayerArch

if TYPE_CHECKING:  # heavy imports stay lazy: `import bortfast` must not import torch
    import torch


def distill(config: DistillConfig, *, callbacks: Sequence[DistillCallback] = ()) -> Path:
    """Pretrain ``config.arch`` by distillation from ``config.teacher``; return the final checkpoint directory
    (``out_dir/final``: a ``BertForMaskedLM`` + tokenizer loadable with ``from_pretrained``).

    Runs as DDP when launched by ``torchrun`` (WORLD_SIZE > 1). Resumes from the newest checkpoint in
    ``out_dir/checkpoints`` (or ``resume_from``), refusing one made with another teacher vocabulary, architecture,
    sequence length or corpus. ``callbacks`` get ``(event, info)`` for events "log", "eval" and "checkpoint".
    """
    from bortfast._base.io import output_lock

    rank, world, local_rank = dist.launch_info()
    # rank 0 writes the directory: it holds the lock (a second command on it fails at once, naming this one)
    lock = output_lock(config.out_dir, "bortfast distill") if rank == 0 else contextlib.nullcontext()
    with lock, dist.process_group(use_cuda=config.device != "cpu"):
        return _distill(config, callbacks, rank, world, local_rank)


def _distill(config: DistillConfig, callbacks: Sequence[DistillCallback], rank: int, world: int,
             local_rank: int) -> Path:
    run = _DistillRun(config, callbacks, rank, world, local_rank)
    run.prepare_out_dir()
    run.train()
    return run.save_final()


@contextlib.contextmanager
def _writing(tmp: Path, what: str) -> Iterator[None]:
    """Fill the temp directory ``tmp`` of ``what``; on any failure remove it, so nothing half-written stays beside
    the finished checkpoints, and report a failed write (a full disk: OSError, or safetensors' own error type) as
    one OSError naming ``what``."""
    try:
        yield
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) or type(err).__name__ == "SafetensorError":
            raise OSError(f"writing {what} failed ({type(err).__name__}: {err}); its temporary directory was "
                          f"removed and earlier checkpoints are intact (resume with the same command)") from None
        raise


def _device(config: DistillConfig, local_rank: int) -> torch.device:
    import torch

    if config.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device if config.device != "cuda" else f"cuda:{local_rank}")


def _fingerprints(config: DistillConfig, arch: Arch | PerLayerArch, teacher: Teacher, corpus: Corpus) -> dict:
    """What a checkpoint must have been trained with to be resumed by this run."""
    return {"arch": list(arch.tuple) if isinstance(arch, Arch) else arch.spec, "vocab_size": arch.vocab_size,
            "teacher_vocab": teacher.vocab_fingerprint,
            "teacher_kind": teacher.kind, "seq_len": config.seq_len, "corpus": corpus.fingerprint,
            "teacher_hidden": teacher.arch.hidden, "init": config.init,
            **({"unit": "sentences"} if config.unit_for(teacher.kind) == "sentences" else {}),
            **({"layers": config.teacher_layers or config.layers} if config.init == "inherit" else {})}


def _load_training_corpus(config: DistillConfig, teacher: Teacher, *, blocks: bool = False) -> Corpus:
    """The corpus the student trains on: packed blocks, or one sentence per row (``config.unit_for(teacher.kind)``,
    an encoder-only teacher's pooled sentence embedding is defined on sentences). ``blocks=True``: packed blocks
    whatever ``config.unit`` says (the importance calibration of inheritance runs on blocks)."""
    exclude = read_exclude_file(config.exclude_file)
    if config.unit_for(teacher.kind) == "sentences" and not blocks:  # unit_for refuses a masked LM's sentences
        return load_sentences(config.corpus, teacher.tokenizer, seq_len=config.seq_len,
                              heldout_fraction=config.heldout_fraction, seed=config.data_seed,
                              max_sentences=config.max_sentences, exclude=exclude)
    return load_corpus(config.corpus, teacher.tokenizer, seq_len=config.seq_len,
                       heldout_fraction=config.heldout_fraction, seed=config.data_seed,
                       max_blocks=config.max_blocks, exclude=exclude)


def _resume_dir(config: DistillConfig, ckpt_root: Path) -> Path | None:
    if config.resume_from:
        resume_dir = Path(config.resume_from)
        if not resume_dir.is_dir():
            raise FileNotFoundError(f"resume_from checkpoint {config.resume_from!r} does not exist")
        return resume_dir
    if config.resume:
        existing = _checkpoint_dirs(ckpt_root)
        return existing[-1] if existing else None
    return None


def _read_trainer_state(resume_dir: Path, fingerprints: dict) -> dict:
    """``trainer_state.json`` of a checkpoint, refused when it was trained on other settings."""
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
    return trainer_state


def _resumed_student(resume_dir: Path) -> Any:
    try:
        return _load_student(resume_dir)
    except ValueError:
        raise
    except Exception as err:  # safetensors / json errors: name the checkpoint
        raise ValueError(f"checkpoint {str(resume_dir)!r} is corrupt ({type(err).__name__}: {err}); nothing was "
                         f"deleted — remove it or pass resume_from= an earlier checkpoint") from None


def _new_student(config: DistillConfig, arch: Arch | PerLayerArch, teacher: Teacher, corpus: Corpus, out: Path,
                 rank: int) -> Any:
    """The student at step 0: cut out of the teacher (``init="inherit"``) or randomly initialised."""
    importance = None
    if config.init == "inherit":
        from bortfast.distill.inherit import check_fits
        from bortfast.distill.perlayer import check_fits_per_layer

        # before the calibration passes: a clear error first
        if isinstance(arch, Arch):
            check_fits(arch, teacher.config)
        else:
            check_fits_per_layer(arch, teacher.config, config.teacher_layers)
        if corpus.pad_id is not None:  # sentence rows: calibrate on packed blocks of the same text
            corpus = _load_training_corpus(config, teacher, blocks=True)
        importance = teacher_importance(teacher, corpus, out, n_blocks=config.calibration_blocks,
                                        progress=config.progress and rank == 0)
    return build_student(arch, teacher, seed=config.seed, dropout=config.dropout, init=config.init,
                         importance=importance, layers=config.teacher_layers or config.layers)


def _restore_projection(resume_dir: Path, module: Any) -> None:
    """The hidden-state projection's weights from a checkpoint (an encoder-only teacher's student has one)."""
    from safetensors.torch import load_file

    if module.projection is not None:
        try:
            module.projection.load_state_dict(load_file(str(resume_dir / "projection.safetensors")))
        except Exception as err:
            raise ValueError(f"checkpoint {str(resume_dir)!r}: cannot load projection.safetensors ({err})") from None


def _restore_optimiser(resume_dir: Path, train_step: TrainingStep, rank: int) -> None:
    """Optimiser, scheduler and this rank's RNG states from a checkpoint."""
    trainer = _torch_load_safe(resume_dir / "trainer.pt") if (resume_dir / "trainer.pt").is_file() else None
    if trainer is None:
        raise ValueError(f"checkpoint {str(resume_dir)!r} has no trainer.pt (optimizer state); it is incomplete")
    train_step.optimizer.load_state_dict(trainer["optimizer"])
    train_step.scheduler.load_state_dict(trainer["scheduler"])
    rng_file = resume_dir / f"rng_rank{rank}.pt"
    if rng_file.is_file():
        _set_rng_state(_torch_load_safe(rng_file))
    else:
        warnings.warn(f"checkpoint {resume_dir} has no RNG state for rank {rank} (written with a different "
                      f"world size?); dropout RNG re-seeded", stacklevel=4)


class _DistillRun:
    """One rank's distillation: the teacher, corpus, student and training step it set up, and the loop."""

    def __init__(self, config: DistillConfig, callbacks: Sequence[DistillCallback], rank: int, world: int,
                 local_rank: int) -> None:
        import torch
        from torch.nn.parallel import DistributedDataParallel

        self.config, self.callbacks, self.rank, self.world = config, callbacks, rank, world
        self.is_main = rank == 0
        self.device = _device(config, local_rank)
        self.out = Path(config.out_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.metrics_path = self.out / "metrics.jsonl"

        teacher = self.teacher = load_teacher(config.teacher, allow_pickle=config.allow_pickle)
        # the unit, batch size and lr this teacher's recipe gives where the config leaves them to it
        config = self.config = config.resolved_for(teacher.kind)
        self.arch = student_arch(config.arch, teacher)
        if config.seq_len > teacher.max_seq_len:
            raise ValueError(f"seq_len={config.seq_len} exceeds what teacher {config.teacher!r} can take "
                             f"(max {teacher.max_seq_len} positions)")
        self.corpus = _load_training_corpus(config, teacher)
        self.fingerprints = _fingerprints(config, self.arch, teacher, self.corpus)
        self.resume_dir = _resume_dir(config, self.ckpt_root)

        torch.manual_seed(_derived_seed(config.seed, rank, 0xD1))
        np.random.seed(_derived_seed(config.seed, rank, 0xD2))  # noqa: NPY002
        random.seed(_derived_seed(config.seed, rank, 0xD3))
        self.start_step = 0
        if self.resume_dir is not None:
            trainer_state = _read_trainer_state(self.resume_dir, self.fingerprints)
            student = _resumed_student(self.resume_dir)
            self.start_step = int(trainer_state["step"])
        else:
            student = _new_student(config, self.arch, teacher, self.corpus, self.out, rank)
        self.module = _trainable_module(student, teacher, seed=config.seed)
        if self.resume_dir is not None:
            _restore_projection(self.resume_dir, self.module)
        self.module.to(self.device).train()
        teacher.model.to(self.device)
        self.train_step = TrainingStep(self.module, lr=config.lr, total_steps=max(1, config.steps),
                                       warmup_steps=config.warmup_steps, weight_decay=config.weight_decay,
                                       max_grad_norm=config.max_grad_norm)
        if self.resume_dir is not None:
            _restore_optimiser(self.resume_dir, self.train_step, rank)
        self.model = DistributedDataParallel(self.module) if world > 1 else self.module
        self.weights = config.loss_weights_for(teacher.kind)
        self.masker = masker_for(teacher.tokenizer, teacher.kind, self.weights.alpha, config.mlm_probability)
        self.autocast_dtype = torch.bfloat16 if config.bf16 else None

    def emit(self, event: str, info: dict) -> None:
        for cb in self.callbacks:
            cb(event, info)

    def prepare_out_dir(self) -> None:
        if not self.is_main:
            return
        out, ckpt_root, config = self.out, self.ckpt_root, self.config
        out.mkdir(parents=True, exist_ok=True)
        # temp directories of a killed run are never finished checkpoints: clear them
        for stale in [*out.glob(".tmp-final"), *out.glob(".old-final-*"), *ckpt_root.glob(".tmp-step-*"),
                      *ckpt_root.glob(".old-step-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        write_json(out / "distill_config.json", config)
        append_jsonl(self.metrics_path, {
            "event": "start", "step": self.start_step, "world_size": self.world, "arch": str(self.arch),
            "teacher": config.teacher, "teacher_kind": self.teacher.kind, "train_blocks": len(self.corpus.train),
            "heldout_blocks": len(self.corpus.heldout),
            "resumed_from": str(self.resume_dir) if self.resume_dir else None})

    def save_checkpoint(self, step: int) -> Path:
        import torch

        final = self.ckpt_root / f"step-{step:08d}"
        tmp = self.ckpt_root / f".tmp-step-{step:08d}"
        if self.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)  # a temp dir left by a killed run: never a finished checkpoint
            tmp.mkdir(parents=True)
        dist.barrier()
        torch.save(_rng_state(), tmp / f"rng_rank{self.rank}.pt")
        dist.barrier()
        if self.is_main:
            with _writing(tmp, f"checkpoint {final}"):
                _save_model_dir(self.module, self.teacher, tmp)
                torch.save({"optimizer": self.train_step.optimizer.state_dict(),
                            "scheduler": self.train_step.scheduler.state_dict()}, tmp / "trainer.pt")
                write_json(tmp / "trainer_state.json", {
                    "step": step, "world_size": self.world, "fingerprints": self.fingerprints,
                    "config": dataclasses.asdict(self.config), "arch": str(self.arch), "time": time.time()})
                replace_dir(tmp, final)
            for old in _checkpoint_dirs(self.ckpt_root)[: -self.config.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        dist.barrier()
        self.emit("checkpoint", {"step": step, "path": str(final)})
        return final

    def run_eval(self, step: int) -> dict:
        config = self.config
        res = evaluate(self.module, self.teacher, self.corpus.heldout, self.masker, seed=config.data_seed,
                       batch_size=config.heldout_batch_size, max_batches=config.eval_batches, weights=self.weights,
                       device=self.device, autocast_dtype=self.autocast_dtype, pad_id=self.corpus.pad_id)
        rec = {"event": "eval", "step": step, "heldout_loss": res["loss"], "heldout_mlm_loss": res["mlm_loss"],
               "heldout_kd_loss": res["kd_loss"], "heldout_mlm_accuracy": res["mlm_accuracy"]}
        append_jsonl(self.metrics_path, rec)
        self.emit("eval", rec)
        return rec

    def step_loss(self, step: int) -> tuple[Any, Any, Any, int]:
        """One batch's (loss, MLM term, KD term, tokens in the batch on this rank)."""
        import torch

        config, teacher, weights, device = self.config, self.teacher, self.weights, self.device
        rows = batch_indices(len(self.corpus.train), config.batch_size, step, seed=config.seed, rank=self.rank,
                             world_size=self.world)
        pad_id = self.corpus.pad_id
        batch = trim(self.corpus.train[rows], pad_id)
        mask = None if pad_id is None else attention_mask(batch, pad_id).to(device)
        inputs, labels = self.masker(batch, seed=_derived_seed(config.seed, step, self.rank))
        inputs, labels = inputs.to(device), labels.to(device)
        with _autocast(device, self.autocast_dtype):
            sel = labels != -100
            t_out = teacher_targets(teacher, inputs, sel, mask) if weights.beta or weights.embedding else None
            logits, hidden = self.model(inputs, sel, mask)
        loss, mlm, kd = distillation_loss(logits, hidden, t_out, labels, teacher.kind, weights, mask)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss is {float(loss)} at step {step}; lower lr={config.lr}")
        return loss, mlm, kd, inputs.numel()

    def train(self) -> None:
        from tqdm.auto import tqdm

        config = self.config
        bar = tqdm(total=config.steps, initial=self.start_step, disable=not (self.is_main and config.progress),
                   desc=f"distill {self.arch}", unit="step")
        meter = _TrainMeter()
        for step in range(self.start_step, config.steps):
            loss, mlm, kd, tokens = self.step_loss(step)
            self.train_step(loss)
            done = step + 1
            meter.add(tokens * self.world, (loss, mlm, kd))
            bar.update(1)
            if done % config.log_every == 0 or done == config.steps:
                self.log(done, meter, bar)
            if self.is_main and config.eval_every and done % config.eval_every == 0 and done != config.steps:
                self.run_eval(done)
            if (config.checkpoint_every and done % config.checkpoint_every == 0) or done == config.steps:
                self.save_checkpoint(done)
        bar.close()

    def log(self, done: int, meter: _TrainMeter, bar: Any) -> None:
        now = time.perf_counter()
        sums = meter.sums
        if self.world > 1:  # log the mean over ranks, not rank 0's share
            sums = dict(zip(sums, dist.mean_over_ranks(list(sums.values()), device=self.device)))
        rec = {"event": "train", "step": done, "world_size": self.world,
               **{k: v / meter.n for k, v in sums.items()}, "lr": self.train_step.scheduler.get_last_lr()[0],
               "tokens_per_s": meter.tokens / max(now - meter.t_last, 1e-9)}
        if self.is_main:
            append_jsonl(self.metrics_path, rec)
            bar.set_postfix(loss=f"{rec['loss']:.3f}")
        self.emit("log", rec)
        meter.reset(now)

    def save_final(self) -> Path:
        config, out = self.config, self.out
        final = out / "final"
        if self.is_main:
            summary = self.run_eval(config.steps)
            tmp = out / ".tmp-final"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            # An encoder-only teacher trains no MLM head (α = 0): the student ships as the encoder it is (BertModel)
            encoder_only = self.teacher.kind == "hidden" and not self.weights.alpha
            with _writing(tmp, f"the final student {final}"):
                _save_model_dir(self.module, self.teacher, tmp, encoder_only=encoder_only)
                write_json(tmp / "distill_config.json", config)
                write_json(tmp / "summary.json", {"arch": str(self.arch), "steps": config.steps,
                                                  "world_size": self.world, "teacher": config.teacher,
                                                  "teacher_kind": self.teacher.kind, **summary})
                replace_dir(tmp, final)
        dist.barrier()
        return final


class _TrainMeter:
    """Sums of the loss terms and the tokens seen since the last ``train`` log record."""

    def __init__(self) -> None:
        self.reset(time.perf_counter())

    def reset(self, now: float) -> None:
        self.t_last, self.tokens, self.n = now, 0, 0
        self.sums = {"loss": 0.0, "mlm_loss": 0.0, "kd_loss": 0.0}

    def add(self, tokens: int, terms: tuple[Any, Any, Any]) -> None:
        self.tokens += tokens
        for k, v in zip(self.sums, terms):
            self.sums[k] += v.item()
        self.n += 1
