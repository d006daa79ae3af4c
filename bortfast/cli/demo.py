"""``bortfast demo``: ``bortfast run`` on the embedded default (all-MiniLM-L6-v2 teacher from the ``demo`` extra,
the standard library's docstrings as corpus), offline."""

from bortfast.cli.run import add_demo_arguments as add_cli_arguments
from bortfast.cli.run import run_cli

__all__ = ["add_cli_arguments", "run_cli"]
