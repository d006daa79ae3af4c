"""The ``bortfast`` command line. Each subcommand has its own module in :mod:`bortfast.cli`, imported only when
used, which defines ``add_cli_arguments(parser)`` and ``run_cli(args) -> int``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence

# name -> (module, one-line help). Modules are imported lazily so `bortfast --help` stays fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "space": ("bortfast.cli.space", "list a search space's architectures with parameters and FLOPs"),
    "search": ("bortfast.cli.search", "Algorithm 1: find the optimal sub-architecture of a teacher (FPTAS)"),
    "profile": ("bortfast.cli.profile", "measure encoder latency (the fused C++ kernel) over a search space"),
    "distill": ("bortfast.cli.distill", "distil a student: pretraining KD, or (--task) from a fine-tuned teacher"),
    "export": ("bortfast.cli.export", "export a BERT checkpoint to ONNX (fused for ONNX Runtime, optional INT8)"),
    "bench": ("bortfast.cli.bench", "CPU speed-up of the deployed student (ONNX Runtime) over PyTorch BERT-base/large"),
    "run": ("bortfast.cli.run", "the whole pipeline: search, distil, (fine-tune), export, benchmark, report"),
    "demo": ("bortfast.cli.demo", "the whole pipeline on the embedded default teacher and corpus (offline)"),
    "finetune": ("bortfast.cli.finetune", "fine-tune an encoder on a GLUE/SuperGLUE/RACE task (optionally with Agora)"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser. Given the command line ``argv``, only the subcommand it names gets its options (importing every
    command's module would import torch for ``bortfast --version`` / ``--help``); without it, every subcommand."""
    chosen = None if argv is None else next((a for a in argv if a in COMMANDS), None)
    from bortfast._base.version import __version__

    parser = argparse.ArgumentParser(
        prog="bortfast", description="Optimal sub-architecture extraction for BERT (Bort), fast on CPU."
    )
    parser.add_argument("--version", action="version", version=f"bortfast {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of a failure (also: environment BORTFAST_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if argv is None or name == chosen:
            importlib.import_module(module).add_cli_arguments(p)
    return parser


# Commands that load no transformers model: they skip importing it (seconds) just to quiet it.
NO_MODELS = ("space", "profile")


@contextlib.contextmanager
def _quiet_libraries(command: str) -> Iterator[None]:
    """transformers' and huggingface_hub's per-load reports and progress bars ("Loading weights", "Writing model
    shards") off for the command, restored after: bortfast's own bars and messages say what is going on."""
    if command in NO_MODELS:
        yield
        return
    from bortfast._base.state import quiet_transformers

    with quiet_transformers(progress_bars=False):
        yield


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        with _quiet_libraries(args.command):
            return int(module.run_cli(args) or 0)
    except Exception as err:  # bad input, a full disk, a library's own error type (safetensors, huggingface_hub)
        if args.debug or os.environ.get("BORTFAST_DEBUG", "") not in ("", "0"):
            raise
        print(f"bortfast {args.command}: error: {err} ({type(err).__name__}; --debug shows the traceback)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bortfast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
