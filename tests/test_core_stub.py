"""The stub bortfast/_core.pyi and the compiled module must list the same functions with the same arguments."""

import ast
import inspect
import re
from pathlib import Path

import bortfast
from bortfast import _core

STUB = Path(bortfast.__file__).with_name("_core.pyi")


def stub_functions() -> dict[str, list[str]]:
    tree = ast.parse(STUB.read_text())
    return {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}


def module_functions() -> dict[str, list[str]]:
    out = {}
    for name, obj in vars(_core).items():
        if name.startswith("_") or not callable(obj) or inspect.isclass(obj):
            continue
        # pybind11 signature line: "name(arg0: type, arg1: type = ...) -> ret"
        first = obj.__doc__.splitlines()[0]
        params = re.match(rf"{name}\((.*)\) ->", first).group(1)
        out[name] = [p.split(":")[0].strip() for p in params.split(", ") if p]
    return out


def test_stub_and_module_agree():
    assert stub_functions() == module_functions()
