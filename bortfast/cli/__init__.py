"""The ``bortfast`` command line: :mod:`.main` dispatches to one module per command."""

from bortfast.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
