"""``bortfast distill``: pretrain a student architecture by knowledge distillation (Bort paper §3).

The options are generated from :class:`bortfast.distill.DistillConfig`, one per field. Under ``torchrun`` the same
command runs as DDP, e.g. ``torchrun --nproc_per_node=2 --standalone -m bortfast distill ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing

_REQUIRED = {"teacher", "corpus", "arch", "out_dir"}
_HELP = {
    "teacher": "teacher: a local transformers directory or a hub id",
    "corpus": "text file(s), director(ies) of text files, or hf:NAME[:CONFIG[:SPLIT]]",
    "arch": "student architecture 'layers,heads,hidden,intermediate', e.g. 4,8,1024,768",
    "out_dir": "output directory (checkpoints/, final/, metrics.jsonl)",
    "resume": "continue from the newest checkpoint in --out (default on; --no-resume starts over)",
    "progress": "show a progress bar (rank 0)",
    "bf16": "bfloat16 autocast",
    "allow_pickle": "allow a teacher with only pickle weights (pytorch_model.bin)",
}


def _fields():
    from bortfast.distill import DistillConfig

    hints = typing.get_type_hints(DistillConfig)
    return DistillConfig, [(f, hints[f.name]) for f in dataclasses.fields(DistillConfig)]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    # Built from the dataclass without importing torch: DistillConfig lives in bortfast.distill, whose heavy
    # imports are inside functions.
    _, fields = _fields()
    for f, hint in fields:
        flag = "--out" if f.name == "out_dir" else "--" + f.name.replace("_", "-")
        help_text = _HELP.get(f.name, "")
        if f.name in _REQUIRED:
            kwargs: dict = {"required": True, "dest": f.name, "help": help_text}
            if f.name == "corpus":
                kwargs["nargs"] = "+"
            parser.add_argument(flag, **kwargs)
            continue
        default = f.default
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default {'on' if default else 'off'})".strip())
            continue
        base = typing.get_args(hint)[0] if typing.get_args(hint) else hint
        kind = base if base in (int, float, str) else str
        parser.add_argument(flag, dest=f.name, type=kind, default=default, metavar=f.name.upper(),
                            help=f"{help_text} (default {default})".strip())


def run_cli(args: argparse.Namespace) -> int:
    from bortfast.distill import distill

    config_cls, fields = _fields()
    config = config_cls(**{f.name: getattr(args, f.name) for f, _ in fields})
    final = distill(config)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"distilled {config.arch} from {config.teacher}: {final}")
    return 0
