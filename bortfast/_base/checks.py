"""Validators shared by the configs: each raises ``ValueError`` naming the field and the offending value."""

from __future__ import annotations

import numbers
from typing import Any


def is_int(value: Any) -> bool:
    """An int (numpy integers too), not a bool."""
    return type(value) is int or (isinstance(value, numbers.Integral) and not isinstance(value, bool))


def check_int(name: str, value: Any, minimum: int = 1, what: str | None = None) -> int:
    """``int(value)`` if ``value`` is an int (not a bool) >= ``minimum``; else
    ``ValueError("{name} must be {what}, got ...")`` (``what`` defaults to "a positive int" for minimum 1 and
    "a non-negative int" for 0)."""
    if not is_int(value) or value < minimum:
        what = what or {1: "a positive int", 0: "a non-negative int"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_int_type(name: str, value: Any, what: str = "an int") -> int:
    """``int(value)`` if ``value`` is an int (numpy integers too, not a bool); else
    ``TypeError("{name} must be {what}, got {value!r} ({type})")``. For APIs that keep a wrong type (TypeError)
    apart from a wrong value (ValueError: follow with :func:`check_int` or :func:`check_positive`)."""
    if not is_int(value):
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    return int(value)


def check_positive_ints(owner: Any, names: tuple[str, ...], prefix: str = "", minimum: int = 1,
                        what: str | None = None) -> None:
    """:func:`check_int` on each attribute ``names`` of ``owner`` (``prefix`` names it in the message)."""
    for name in names:
        check_int(f"{prefix}{name}", getattr(owner, name), minimum, what)


def check_positive(name: str, value: Any) -> Any:
    """``value`` if it is a number > 0 (NaN fails)."""
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return value
