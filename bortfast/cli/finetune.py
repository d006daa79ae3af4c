"""``bortfast finetune``: fine-tune an encoder on a GLUE / SuperGLUE / RACE-style task, plainly or with Agora.

Options are generated from :class:`bortfast.finetune.FinetuneConfig` (``--lr``, ``--epochs``, ...) and
:class:`bortfast.finetune.agora.AgoraConfig` (``--agora-max-thetas``, ``--agora-lrs 1e-4 1e-5``, ...) by the one
builder, :mod:`bortfast.cli._args`, so the CLI and the Python API cannot drift apart (those dataclasses live in the
torch-free :mod:`bortfast.finetune.config`). torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from bortfast.cli._args import add_dataclass_arguments, given
from bortfast.finetune.config import AgoraConfig, FinetuneConfig

_SKIP = ("progress", "finetune")  # set by --no-progress; Agora's per-run settings are the fine-tuning options


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="pretrained encoder directory (save_pretrained; e.g. a "
                        "distilled student) with its tokenizer")
    parser.add_argument("--task", required=True, help="task name: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
                        "wnli, boolq, cb, copa, superglue-rte, wic, wsc, race")
    parser.add_argument("--data", required=True, help="the task's directory of original files, a benchmark root "
                        "containing it (e.g. glue/), or a datasets name (GLUE; needs `datasets` and network)")
    parser.add_argument("--out", required=True, help="output directory: best/ checkpoint, results.json")
    parser.add_argument("--agora", action="store_true", help="select hyperparameters with Agora instead of one run")
    parser.add_argument("--tokenizer", help="tokenizer directory (default: the model directory)")
    parser.add_argument("--threads", type=int, help="the command's thread budget: torch CPU threads, all this "
                        "command uses (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the full results JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    # Every option defaults to None (its help shows the dataclass default): run_cli passes on the ones given.
    add_dataclass_arguments(parser.add_argument_group("fine-tuning (each run; with --agora the grid sets "
                                                      "lr/decay/warmup/batch/seed)"),
                            FinetuneConfig, skip=_SKIP, unset=True)
    add_dataclass_arguments(parser.add_argument_group("Agora (with --agora)"), AgoraConfig, prefix="agora_",
                            skip=_SKIP, unset=True)


def _write_card(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The fine-tuned checkpoint's model card: what it was fine-tuned from and on, and its dev metrics."""
    from bortfast.export.card import ModelCardInfo, write_model_card

    dev = ", ".join(f"{k} {v:.4f} (majority {results['majority_baseline_dev'][k]:.4f})"
                    for k, v in results["dev"].items())
    write_model_card(results["checkpoint"], ModelCardInfo(
        teacher_path=str(args.model), extra_tags=(str(results["task"]),),
        notes=f"Fine-tuned from `{args.model}` on {results['task']} ({results['n_train']} training examples, "
              f"{'Agora' if args.agora else 'plain fine-tuning'}). Dev: {dev}."), overwrite=True)


def run_cli(args: argparse.Namespace) -> int:
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    ft = FinetuneConfig(**given(FinetuneConfig, args, skip=_SKIP), progress=not args.no_progress)
    agora_opts = given(AgoraConfig, args, prefix="agora_", skip=_SKIP)
    if agora_opts and not args.agora:
        raise ValueError(f"--agora-* options given without --agora: {', '.join(sorted(agora_opts))}")
    if args.agora:
        from bortfast.finetune.agora import agora

        defaults = AgoraConfig().finetune
        explicit = given(FinetuneConfig, args, skip=_SKIP)
        run = dataclasses.replace(defaults, **explicit, progress=not args.no_progress)
        results = agora(args.model, args.task, args.data, args.out, AgoraConfig(**agora_opts, finetune=run),
                        tokenizer_dir=args.tokenizer)
    else:
        from bortfast.finetune.train import finetune

        results = finetune(args.model, args.task, args.data, args.out, ft, tokenizer_dir=args.tokenizer)
    if args.json:
        json.dump(results, sys.stdout, indent=2, default=str)
        print()
        return 0
    method = "Agora" if args.agora else "fine-tuning"
    print(f"{results['task']} ({method}, {results['n_train']} training examples, "
          f"CPU {results.get('cpu_seconds', results.get('train_cpu_seconds', 0.0)):.1f} s)")
    print(f"{'metric':<10} {'dev':>8} {'majority':>9}")
    for name, value in results["dev"].items():
        print(f"{name:<10} {value:>8.4f} {results['majority_baseline_dev'][name]:>9.4f}")
    if args.agora:
        print(f"final θ: {results['final_theta']} (grid {results['grid_size']}, {len(results['rounds'])} rounds, "
              f"{results['n_generated']} generated examples, generator {results['generator']})")
    _write_card(args, results)
    print(f"checkpoint: {results['checkpoint']}; results: {args.out}/results.json")
    return 0
