"""Training speed of task distillation with hidden-state KD: batches in random order with the teacher run per batch
(before 2026-12-02) against batches grouped by length with the teacher's targets cached (the default now).

Both modes train the same inherited student from the same start for the same number of steps on the same examples
(a seeded subsample of the task's training split), in this process, one after the other, with torch at --threads;
the figure is the ratio of their step times. The one-off cost of the cache (one teacher pass over the training
set, which also yields the logits both modes need) is reported next to it.

Run (reads ../shared/data/glue; needs a fine-tuned teacher, e.g. ``bortfast finetune``'s best/):
    python benchmarks/task_distill_speed.py --teacher TEACHER/best --arch 2,3,192,1152 --out DIR
"""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import numpy as np
from _harness import out_dir, parser, write_result  # benchmarks/ is on sys.path when run as a script

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def time_steps(run, batches: list[list[int]]) -> float:
    """Seconds per optimizer step over ``batches`` (after 5 warm-up steps), on a copy of the student."""
    from bortfast._base.optim import TrainingStep  # private package: no public training step
    from bortfast.finetune.task_distill import _batch_loss  # private: no public per-batch loss

    run = dataclasses.replace(run, student=copy.deepcopy(run.student))
    run.student.train()
    step = TrainingStep(run.student, lr=run.config.lr, total_steps=len(batches), warmup_steps=0,
                        weight_decay=run.config.weight_decay, max_grad_norm=run.config.max_grad_norm)
    for index in batches[:5]:
        step(_batch_loss(run, index)[0])
    t0 = time.perf_counter()
    for index in batches[5:]:
        step(_batch_loss(run, index)[0])
    return (time.perf_counter() - t0) / (len(batches) - 5)


def main() -> None:
    ap = parser(__doc__, threads=1, out_help="output folder for task_distill_speed.json (and the student's scratch)")
    ap.add_argument("--teacher", required=True, help="a fine-tuned checkpoint of --task")
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--arch", default="2,3,192,1152")
    ap.add_argument("--examples", type=int, default=8000, help="training examples (seeded subsample)")
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps timed per mode")
    ap.add_argument("--max-seq-len", type=int, default=64)
    args = ap.parse_args()
    import torch

    from bortfast.data.tasks import get_task
    from bortfast.finetune.config import TaskDistillConfig
    from bortfast.finetune.encode import batch_order, example_lengths
    from bortfast.finetune.task_distill import _prepare, teacher_targets  # _prepare private: no public run set-up

    torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    cfg = TaskDistillConfig(task=args.task, data=str(args.data), teacher=args.teacher, arch=args.arch,
                            out_dir=str(out_dir(args.out)), hidden_weight=1.0, max_train_examples=args.examples,
                            max_seq_len=args.max_seq_len, progress=False, teacher_cache_gib=0)
    run, _, info = _prepare(cfg, spec)  # the teacher per batch (no cache)
    t0 = time.perf_counter()
    _, targets = teacher_targets(run.teacher, run.train, run.plan, spec.kind, run.pad_id, cfg.eval_batch_size)
    cache_seconds = time.perf_counter() - t0
    lengths = example_lengths(run.train, spec.kind)
    n = args.steps + 5
    plain = batch_order(lengths, cfg.batch_size, np.random.default_rng(0), False)[:n]
    grouped = batch_order(lengths, cfg.batch_size, np.random.default_rng(0), True)[:n]
    s_plain = time_steps(run, plain)
    s_fast = time_steps(dataclasses.replace(run, targets=targets), grouped)
    epoch = len(lengths) / cfg.batch_size
    res = {"task": args.task, "arch": args.arch, "examples": len(lengths), "threads": args.threads,
           "steps_timed": args.steps, "batch_size": cfg.batch_size,
           "tokens_per_batch": {"random": float(np.mean([lengths[b].max() * len(b) for b in plain])),
                                "grouped": float(np.mean([lengths[b].max() * len(b) for b in grouped]))},
           "seconds_per_step": {"random_teacher_per_batch": s_plain, "grouped_cached": s_fast},
           "speedup": s_plain / s_fast, "cache_seconds": cache_seconds,
           "epoch_seconds_estimate": {"random_teacher_per_batch": s_plain * epoch,
                                      "grouped_cached": s_fast * epoch + cache_seconds},
           "teacher_dev": info["teacher_dev"]}
    write_result(args.out, res)
    print(f"{args.arch}, {len(lengths)} examples, {args.threads} thread(s): {s_plain * 1000:.0f} ms/step (random, "
          f"teacher per batch) vs {s_fast * 1000:.0f} ms/step (grouped, cached): {res['speedup']:.2f}x; "
          f"cache {cache_seconds:.0f} s")


if __name__ == "__main__":
    main()
