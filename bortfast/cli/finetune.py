"""``bortfast finetune``: fine-tune an encoder on a GLUE / SuperGLUE / RACE-style task, plainly or with Agora.

Options are generated from :class:`bortfast.finetune.FinetuneConfig` (``--learning-rate``, ``--epochs``, ...) and
:class:`bortfast.finetune.agora.AgoraConfig` (``--agora-max-thetas``, ``--agora-learning-rates 1e-4 1e-5``, ...), so the
CLI and the Python API cannot drift apart (those dataclasses live in the torch-free
:mod:`bortfast.finetune.config`). torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from bortfast.finetune.config import AgoraConfig, FinetuneConfig

# One-line help per dataclass field; type and default come from the dataclass itself.
_HELP = {
    "learning_rate": "peak learning rate", "weight_decay": "AdamW weight decay",
    "warmup_ratio": "fraction of steps warming up", "batch_size": "training batch size",
    "epochs": "epochs; dev (or held-out) scored after each", "max_seq_len": "max tokens per example",
    "seed": "random seed", "max_train_examples": "subsample the training set to this many examples (seeded)",
    "max_eval_examples": "subsample the dev set to this many examples (seeded)",
    "heldout_fraction": "select on this share of train instead of dev (Agora: prune on it)",
    "eval_batch_size": "scoring batch size", "max_grad_norm": "gradient-norm clip",
    "classifier_hidden_layer": "extra hidden layer in the head (default: only for CoLA, as in the paper)",
    "classifier_dropout": "head dropout (default: the encoder's hidden dropout)",
    "learning_rates": "grid: learning rates", "weight_decays": "grid: weight decays",
    "warmup_ratios": "grid: warmup ratios", "batch_sizes": "grid: batch sizes", "seeds": "grid: seeds",
    "max_thetas": "sample this many θ from the grid (CPU budgets)", "replay": "extra rounds with the final θ",
    "copies": "perturbations per wrongly predicted training example",
    "max_new_per_round": "cap on generated examples per round", "mask_prob": "masking / word-dropout rate",
    "regression_error": "regression: |error| above this counts as wrong",
    "generator": "data-generating function: auto (MLM head if present), mlm or words",
}
_SKIP = {"progress", "finetune"}


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name not in _SKIP]


def _add(group: argparse._ArgumentGroup, prefix: str, cls: type) -> None:
    default_obj = cls()
    for f in _fields(cls):
        flag = "--" + prefix + f.name.replace("_", "-")
        dest = prefix.replace("-", "_") + f.name
        default = getattr(default_obj, f.name)
        help_text = f"{_HELP.get(f.name, f.name)} (default {default})"
        kind = str(f.type)
        if "bool" in kind:
            group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        scalar = float if "float" in kind else int if "int" in kind else str
        nargs = "+" if kind.startswith("tuple") else None
        group.add_argument(flag, dest=dest, type=scalar, nargs=nargs, default=None, help=help_text)


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
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the full results JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add(parser.add_argument_group("fine-tuning (each run; with --agora the grid sets lr/decay/warmup/batch/seed)"),
         "", FinetuneConfig)
    _add(parser.add_argument_group("Agora (with --agora)"), "agora-", AgoraConfig)


def _overrides(args: argparse.Namespace, prefix: str, cls: type) -> dict[str, Any]:
    out = {}
    for f in _fields(cls):
        value = getattr(args, prefix + f.name)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def run_cli(args: argparse.Namespace) -> int:
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    ft = FinetuneConfig(**_overrides(args, "", FinetuneConfig), progress=not args.no_progress)
    agora_opts = _overrides(args, "agora_", AgoraConfig)
    if agora_opts and not args.agora:
        raise ValueError(f"--agora-* options given without --agora: {', '.join(sorted(agora_opts))}")
    if args.agora:
        from bortfast.finetune.agora import agora

        defaults = AgoraConfig().finetune
        explicit = _overrides(args, "", FinetuneConfig)
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
    print(f"checkpoint: {results['checkpoint']}; results: {args.out}/results.json")
    return 0
