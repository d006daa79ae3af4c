"""The one dataclass → argparse builder: every option of a config-driven command comes from its config's fields.

A field becomes one option: ``--{prefix}{name}`` with ``-`` for ``_`` (the ``flag`` metadata names another), its
value in ``args.{prefix}{name}`` (``dest`` metadata: another). The type hint gives the parser: ``int``, ``float``,
``str``; ``X | None``; ``Literal[...]`` (choices); ``tuple[X, ...]`` / ``list[X]`` (one or more values); ``bool``
(a switch: ``--name`` when the default is False, ``--no-name`` when it is True). The help is the comment after the
field (nanoGPT style) or the ``help`` metadata, followed by the default. Other metadata: ``metavar``, and
``cli=False`` for a field that is no option.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any, Literal


def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in ``cls``'s class body (and its dataclass bases')."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (e.g. built in a REPL): no comments
            continue
        lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment = _comment(lines[node.end_lineno - 1])
                if comment:
                    comments[node.target.id] = comment
    return comments


def _comment(line: str) -> str:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(line.strip() + "\n").readline))
    except (tokenize.TokenError, SyntaxError):
        return ""
    return next((t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT), "")


def dest_of(field: dataclasses.Field, prefix: str = "") -> str:
    """The ``args`` attribute (and the flat setting name) of ``field`` under ``prefix``."""
    return field.metadata.get("dest", prefix + field.name)


def _parser_kwargs(hint: Any, default: Any) -> dict[str, Any]:
    """type / choices / nargs for a type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:  # X | None
        return _parser_kwargs(args[0], default)
    if origin is Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin in (tuple, list) and args:
        return {"nargs": "+", "type": args[0]}
    if hint in (int, float, str):
        return {"type": hint}
    raise TypeError(f"no command-line parser for a field of type {hint!r}")


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                            prefix: str = "", defaults: Mapping[str, Any] | None = None,
                            skip: Collection[str] = ()) -> None:
    """One option per field of dataclass ``cls`` (fields named in ``skip`` left out). ``defaults`` overrides the
    fields' defaults, keyed by ``dest`` (``prefix`` + name unless the field names its own)."""
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.metadata.get("cli", True):
            continue
        dest = dest_of(f, prefix)
        flag = "--" + f.metadata.get("flag", dest.replace("_", "-"))
        help_text = f.metadata.get("help", comments.get(f.name, "")).replace("%", "%%")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = defaults.get(dest, None if required else
                               f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if hints[f.name] is bool:
            flag = "--" + f.metadata.get("flag", ("no-" if default else "") + dest.replace("_", "-"))
            parser.add_argument(flag, dest=dest, action="store_false" if default else "store_true", help=help_text)
            parser.set_defaults(**{dest: default})
            continue
        kwargs = _parser_kwargs(hints[f.name], default)
        if isinstance(default, tuple):
            default = list(default)
        if required:
            kwargs["required"] = True
        else:
            help_text += f"{'; ' if help_text else ''}default %(default)s"
        if "metavar" in f.metadata:
            kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag, dest=dest, default=default, help=help_text, **kwargs)


def from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", skip: Collection[str] = (),
              **values: Any) -> Any:
    """An instance of dataclass ``cls`` from the options :func:`add_dataclass_arguments` added; ``values`` are
    the fields that are no options (or replace them)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in values or not f.metadata.get("cli", True):
            continue
        value = getattr(args, dest_of(f, prefix))
        origin = typing.get_origin(hints[f.name])
        if isinstance(value, list) and (origin is tuple or tuple in map(typing.get_origin,
                                                                         typing.get_args(hints[f.name]))):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)
