"""README's examples cannot drift from the code (issue 26): every ``bortfast`` command line in README.md and the
getting-started page parses with the real command-line parser, and every Python example compiles, imports what it
names and passes only keywords its configs accept. The documented route itself runs end to end on tiny models in
tests/test_user_path.py (distill → export → Encoder, run → model.onnx / student/, finetune → export → Classifier)."""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from bortfast.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "getting-started.md"]


def _blocks(page: Path, languages: tuple[str, ...]) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [m.group(2) for m in re.finditer(r"```(\w*)\n(.*?)```", text, re.S) if m.group(1) in languages]


def _command_lines() -> list[tuple[str, str]]:
    lines = []
    for page in PAGES:
        for block in _blocks(page, ("", "bash", "sh", "console")):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("bortfast ") and "..." not in line and "[" not in line:
                    lines.append((page.name, line))
    return lines


@pytest.mark.parametrize("page, line", _command_lines())
def test_documented_command_lines_parse(page, line):
    argv = shlex.split(line)[1:]
    try:
        build_parser(argv).parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{page}: `{line}` does not parse (exit {exit_.code})")


def _python_blocks() -> list[tuple[str, str]]:
    return [(page.name, block) for page in PAGES for block in _blocks(page, ("python",))]


@pytest.mark.parametrize("page, code", _python_blocks())
def test_documented_python_imports_what_exists_and_passes_accepted_keywords(page, code):
    tree = ast.parse(code)
    namespace: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), page, "exec"), namespace)  # the imports only: nothing runs
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "bortfast":
            assert hasattr(namespace["bortfast"], node.attr), f"{page}: bortfast.{node.attr} does not exist"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in namespace:
            cls = namespace[node.func.id]
            if dataclasses.is_dataclass(cls):
                accepted = {f.name for f in dataclasses.fields(cls)}
                unknown = [k.arg for k in node.keywords if k.arg not in accepted]
                assert not unknown, f"{page}: {cls.__name__} does not take {unknown}"


def test_the_pages_hold_examples():
    assert len(_command_lines()) >= 5 and len(_python_blocks()) >= 3
