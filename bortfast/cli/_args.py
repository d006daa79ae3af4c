"""The one dataclass → argparse builder: every command's options come from its config dataclasses, as
``transformers.HfArgumentParser`` builds them (help in ``field(metadata={"help": ...})``).

A field becomes one option: ``--{prefix}{name}`` with ``-`` for ``_``, its value in ``args.{prefix}{name}``. The type
hint gives the parser: ``int``, ``float``, ``str``; ``X | None``; ``Literal[...]`` (choices); ``tuple[X, ...]`` /
``list[X]`` (one or more values, space-separated); ``bool`` (a switch: ``--name`` when the default is False,
``--no-name`` when it is True). The help is the ``help`` metadata (else the field's trailing ``# comment``, nanoGPT
style), followed once by the default. Other metadata: ``flag`` (another name after the prefix), ``dest`` (another
``args`` attribute, which also names the flag), ``aliases`` (old names, hidden, that still work for one release and
warn), ``metavar``, ``choices`` (for a ``str`` field), and ``cli=False`` for a field that is no option.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal


def removal_release() -> str:
    """The release that drops the deprecated spellings: the next minor one."""
    from bortfast._base.version import __version__

    major, minor = (int(v) for v in __version__.split(".")[:2])
    return f"{major}.{minor + 1}"


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr for an old spelling (argparse has no deprecated options before Python 3.13)."""
    print(f"bortfast: DeprecationWarning: {old} is deprecated and will be removed in bortfast {removal_release()}; "
          f"use {new}", file=sys.stderr)


class ListAction(argparse.Action):
    """One or more space-separated values; numbers also in the old comma form ("1,8"), with a warning."""

    def __init__(self, option_strings: Sequence[str], dest: str, item: type = str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="+", **kwargs)
        self.item = item

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        out = []
        for value in values:
            parts = [value]
            if self.item in (int, float) and "," in value:
                parts = [p for p in value.split(",") if p]
                warn_deprecated(f"the comma list {option_string} {value}", f"{option_string} {' '.join(parts)}")
            for part in parts:
                try:
                    out.append(self.item(part))
                except ValueError:
                    parser.error(f"argument {option_string}: invalid {self.item.__name__} value: {part!r}")
        setattr(namespace, self.dest, out)


class _DeprecatedAlias(argparse.Action):
    """A hidden old spelling of ``main``: warns, then does what ``main`` does."""

    def __init__(self, option_strings: Sequence[str], dest: str, main: argparse.Action, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=main.nargs, type=main.type, choices=main.choices,
                         default=argparse.SUPPRESS, help=argparse.SUPPRESS, metavar=main.metavar, **kwargs)
        self.main = main

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warn_deprecated(option_string, self.main.option_strings[0])
        self.main(parser, namespace, values, self.main.option_strings[0])


def add_aliases(parser: argparse.ArgumentParser | argparse._ArgumentGroup, main: argparse.Action,
                *old: str) -> None:
    """Old spellings of the option ``main``: hidden from --help, working for one release, warning when used."""
    for flag in old:
        parser.add_argument(flag, dest=main.dest, action=_DeprecatedAlias, main=main)


def field_comments(cls: type) -> dict[str, str]:
    """The trailing ``# comment`` of each field in ``cls``'s class body (and its dataclass bases'): the help of a
    field without ``help`` metadata."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (e.g. built in a REPL): no comments
            continue
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        by_line = {t.start[0]: t.string.lstrip("#").strip() for t in tokens if t.type == tokenize.COMMENT}
        for node in ast.parse(source).body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.end_lineno in by_line:
                comments[node.target.id] = by_line[node.end_lineno]
    return comments


def dest_of(field: dataclasses.Field, prefix: str = "") -> str:
    """The ``args`` attribute (and the flat setting name) of ``field`` under ``prefix``."""
    return field.metadata.get("dest", prefix + field.name)


def _flag(field: dataclasses.Field, prefix: str, name: str | None = None) -> str:
    if name is None:
        name = prefix + field.metadata["flag"] if "flag" in field.metadata else dest_of(field, prefix)
    return "--" + name.replace("_", "-")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _default_note(defaults: list[tuple[str, Any]]) -> str:
    """"default 32", or per mode ("default 0.5 with --task") where the modes' defaults differ."""
    known = [(label, d) for label, d in defaults if d not in (None, dataclasses.MISSING, (), [])]
    if not known:
        return ""
    if len({_shown(d) for _, d in defaults}) == 1 or len(defaults) == 1:
        return f"default {_shown(known[0][1])}"
    return "default " + ", ".join(f"{_shown(d)} {label}" for label, d in known)


def _parser_kwargs(hint: Any) -> dict[str, Any]:
    """type / choices / nargs for a type hint."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:  # X | None
        return _parser_kwargs(args[0])
    if origin is Literal:
        return {"choices": list(args), "type": type(args[0])}
    if origin in (tuple, list) and args:
        return {"action": ListAction, "item": args[0]}
    if hint in (int, float, str):
        return {"type": hint}
    raise TypeError(f"no command-line parser for a field of type {hint!r}")


def _is_bool(hint: Any) -> bool:
    return hint is bool or (typing.get_origin(hint) in (typing.Union, types.UnionType)
                            and [a for a in typing.get_args(hint) if a is not type(None)] == [bool])


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *classes: type,
                            prefix: str = "", defaults: Mapping[str, Any] | None = None,
                            skip: Collection[str] = (), unset: bool = False, labels: Sequence[str] = (),
                            helps: Mapping[str, str] | None = None) -> None:
    """One option per field of the dataclasses ``classes`` (a name they share is one option; fields named in
    ``skip`` left out).

    ``defaults`` overrides the fields' defaults, keyed by ``dest``. ``unset``: every option defaults to None
    (the help still shows the field's default), so the command can tell the options given from those left out
    (:func:`given`). With several classes, ``labels`` names each (e.g. its mode) in the help of a field whose
    default differs between them or that only some have; ``helps`` replaces a field's help, by field name.
    """
    defaults, helps = defaults or {}, helps or {}
    labels = list(labels) or [c.__name__ for c in classes]
    owners: dict[str, list[tuple[int, dataclasses.Field, Any, str]]] = {}
    for i, cls in enumerate(classes):
        hints, comments = typing.get_type_hints(cls), field_comments(cls)
        for f in dataclasses.fields(cls):
            owners.setdefault(f.name, []).append((i, f, hints[f.name], f.metadata.get("help",
                                                                                    comments.get(f.name, ""))))
    for name, own in owners.items():
        _, f, hint, help_text = own[0]
        if name in skip or not f.metadata.get("cli", True):
            continue
        dest = dest_of(f, prefix)
        help_text = helps.get(name, help_text)
        required = len(own) == len(classes) and all(_default(g) is dataclasses.MISSING for _, g, _, _ in own)
        mode_defaults = [(labels[i], defaults.get(dest, _default(g))) for i, g, _, _ in own]
        switch = hint is bool and not unset  # --name / --no-name: the flag itself says the default
        note = "" if switch else _default_note(mode_defaults if len(classes) > 1 else mode_defaults[:1])
        if len(own) < len(classes):
            note += f"{'; ' if note else ''}{' and '.join(labels[i] for i, *_ in own)} only"
        help_text = (f"{help_text}; {note}" if help_text and note else help_text or note).replace("%", "%%")
        default = None if unset else mode_defaults[0][1]
        if _is_bool(hint):
            if not switch:
                kwargs: dict[str, Any] = {"action": argparse.BooleanOptionalAction, "default": default}
                flag = _flag(f, prefix)
            else:
                kwargs = {"action": "store_false" if default else "store_true"}
                flag = _flag(f, prefix, None if "flag" in f.metadata else ("no-" if default else "") + dest)
                parser.set_defaults(**{dest: default})
        else:
            kwargs = _parser_kwargs(hint)
            flag = _flag(f, prefix)
            kwargs["default"] = list(default) if isinstance(default, tuple) else default
            if required:
                kwargs["required"] = True
            if "choices" not in kwargs:  # the flag's own name, not the dest's
                kwargs["metavar"] = f.metadata.get("flag", dest.removeprefix(prefix)).replace("-", "_").upper()
            for key in ("metavar", "choices"):
                if key in f.metadata:
                    kwargs[key] = list(f.metadata[key]) if key == "choices" else f.metadata[key]
        action = parser.add_argument(flag, dest=dest, help=help_text, **kwargs)
        add_aliases(parser, action, *(_flag(f, prefix, prefix + a) for a in f.metadata.get("aliases", ())))


def _value(hint: Any, value: Any) -> Any:
    """A list from a ``nargs="+"`` option as the tuple a ``tuple[...]`` field holds."""
    hints = [hint, *typing.get_args(hint)]
    return tuple(value) if isinstance(value, list) and tuple in map(typing.get_origin, hints) else value


def given(cls: type, args: argparse.Namespace, *, prefix: str = "", skip: Collection[str] = ()) -> dict[str, Any]:
    """The fields of ``cls`` whose options were given (not None), by field name: for options added with
    ``unset=True``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, dest_of(f, prefix), None)
        if f.name not in skip and f.metadata.get("cli", True) and value is not None:
            out[f.name] = _value(hints[f.name], value)
    return out


def from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", skip: Collection[str] = (),
              **values: Any) -> Any:
    """An instance of dataclass ``cls`` from the options :func:`add_dataclass_arguments` added; ``values`` are
    the fields that are no options (or replace them)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in values or not f.metadata.get("cli", True):
            continue
        values[f.name] = _value(hints[f.name], getattr(args, dest_of(f, prefix)))
    return cls(**values)
