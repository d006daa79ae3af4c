"""``bortfast distill``: pretrain a student architecture by knowledge distillation (Bort paper §3), or, with
``--task``, distil a *fine-tuned* teacher into a student on the task's data (task-specific distillation,
:func:`bortfast.finetune.task_distill.distill_task`).

The options are generated from :class:`bortfast.distill.DistillConfig` and
:class:`bortfast.finetune.config.TaskDistillConfig`, one per field; a field both have (``--teacher``, ``--arch``,
``--temperature``, ``--lr``, ...) is one option. Options left out take the chosen mode's own default, and an
option of the other mode is an error. Under ``torchrun`` pretraining runs as DDP, e.g.
``torchrun --nproc_per_node=2 --standalone -m bortfast distill ...``.
"""

from __future__ import annotations

import argparse
import typing

_LABELS = ("pretraining", "with --task")
# Fields whose meaning differs between the modes: one help for both.
_HELPS = {
    "teacher": "teacher: a local transformers directory or a hub id (with --task: a fine-tuned checkpoint)",
    "corpus": "pretraining: text file(s), director(ies) of text files, or hf:NAME[:CONFIG[:SPLIT]]",
    "arch": "student architecture 'layers,heads,hidden,intermediate', e.g. 4,8,1024,768 (pretraining also takes a "
            "per-layer 'H=..;d=..;A=a1,a2,..;I=i1,i2,..')",
    "out_dir": "output directory (pretraining: checkpoints/, final/, metrics.jsonl; --task: best/, results.json)",
    "alpha": "pretraining: MLM loss weight (default: 0.1 for an MLM teacher, 0 for an encoder-only one); --task: "
             "hard-label loss weight (1 - alpha weighs the logit KD)",
    "temperature": "τ of the softened teacher and student logits",
    "progress": "a progress bar (rank 0)",
    "resume": "continue from the newest checkpoint in --out (--no-resume starts over)",
    "allow_pickle": "allow a teacher with only pickle weights (pytorch_model.bin; torch.load(weights_only=True) "
                    "still applies)",
    "teacher_layers": "the teacher layer each student layer inherits (overrides --layers)",
    "task": "task-specific distillation: the task (sst2, mrpc, cola, stsb, ...) the teacher is fine-tuned for",
    "data": "the task's directory of original files (or a benchmark root such as glue/)",
    "teacher_cache_gib": "hidden KD: keep the teacher's targets in memory (float16) up to this many GiB; 0 = run the "
                         "teacher per batch",
}


def _configs() -> tuple[type, type]:
    from bortfast.distill.config import DistillConfig
    from bortfast.finetune.config import TaskDistillConfig

    return DistillConfig, TaskDistillConfig


def _flag(name: str) -> str:
    return "--out" if name == "out_dir" else "--" + name.replace("_", "-")


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    # Built from the dataclasses without importing torch (both config modules are torch-free). Every optional
    # default is None here (unset), so run_cli can tell the options given from the ones left to the mode's default.
    from bortfast.cli._args import add_dataclass_arguments

    add_dataclass_arguments(parser, *_configs(), unset=True, labels=_LABELS, helps=_HELPS)


def run_cli(args: argparse.Namespace) -> int:
    import dataclasses

    from bortfast.cli._args import given as given_options

    pre_cls, task_cls = _configs()
    given = {**given_options(pre_cls, args), **given_options(task_cls, args)}
    mode, cls = ("task", task_cls) if args.task is not None else ("pretraining", pre_cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    foreign = sorted(_flag(n) for n in given if n not in fields)
    if foreign:
        what = "is not an option" if len(foreign) == 1 else "are not options"
        hint = " (leave out --task to pretrain)" if mode == "task" else " (task distillation: add --task and --data)"
        raise ValueError(f"{', '.join(foreign)} {what} of {mode} distillation{hint}")
    missing = [_flag(n) for n in ("corpus",) if mode == "pretraining" and n not in given] + \
              [_flag(n) for n in ("data",) if mode == "task" and n not in given]
    if missing:
        raise ValueError(f"{mode} distillation needs {', '.join(missing)}")
    config = cls(**given)
    if mode == "task":
        return _run_task(config)
    from bortfast.distill import distill

    final = distill(config)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        from bortfast.export.card import ModelCardInfo, write_model_card

        write_model_card(final, ModelCardInfo(teacher_path=str(config.teacher), steps=config.steps,
                                              corpus=", ".join(map(str, config.corpus))), overwrite=True)
        print(f"distilled {config.arch} from {config.teacher}: {final}")
    return 0


def _run_task(config: typing.Any) -> int:
    from bortfast.finetune.task_distill import distill_task

    res = distill_task(config)
    print(f"{res['task']} (task distillation of {res['teacher']} into ⟨{res['arch']}⟩, {res['n_train']} training "
          f"+ {res['n_augmented']} augmented examples, {res['train_wall_seconds']:.1f} s)")
    print(f"{'metric':<10} {'student':>8} {'teacher':>8} {'majority':>9}")
    for name, value in res["dev"].items():
        print(f"{name:<10} {value:>8.4f} {res['teacher_dev'][name]:>8.4f} {res['majority_baseline_dev'][name]:>9.4f}")
    from bortfast.export.card import ModelCardInfo, QualityRow, write_model_card

    rows = [QualityRow(name, f"{res['task']} dev", res["teacher_dev"][name], value)
            for name, value in res["dev"].items() if name in res["teacher_dev"]]
    write_model_card(res["checkpoint"], ModelCardInfo(teacher_path=str(config.teacher), quality=rows,
                                                      extra_tags=(res["task"],)), overwrite=True)
    print(f"checkpoint: {res['checkpoint']}; results: {config.out_dir}/results.json")
    return 0
