"""The one set of rules for text and JSON values, the same on every database.

Each database would refuse, or silently change, something the others store:
PostgreSQL refuses NUL in text and reads JSONB floats of 1e16 and above back as
integers (``-0.0`` as ``0.0``); MariaDB refuses JSON nested 32 levels deep and
keeps integers beyond 64 bits only as text; no driver can send a lone UTF-16
surrogate. So a value is checked against these rules before the database
sees it, and refused with a :class:`~dataflow.errors.ValidationError` naming
where it is:

* text: no NUL character, no lone surrogate;
* JSON: dicts with str keys, lists, text, bool, None, 64-bit ints and finite
  floats of magnitude below 1e16 (``-0.0`` is stored as ``0.0``), nested at
  most :data:`MAX_JSON_DEPTH` levels (the value itself is the first).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from typing import Any

from dataflow.errors import ValidationError

__all__ = [
    "INT64",
    "JSON_FLOAT_LIMIT",
    "MAX_JSON_DEPTH",
    "check_json",
    "check_text",
    "clean_json",
    "describe",
    "dump_json",
    "text_problem",
]

#: Levels of nested objects/arrays a JSON value may have, itself included.
MAX_JSON_DEPTH = 31
#: Floats in JSON must be smaller than this in magnitude (PostgreSQL's JSONB
#: prints larger ones without a fraction, so they would come back as ints).
JSON_FLOAT_LIMIT = 1e16
#: The range of integers every database stores exactly (64-bit signed).
INT64 = (-(2**63), 2**63 - 1)
_SURROGATE = re.compile("[\ud800-\udfff]")
# One encoder for every call: json.dumps() with options builds a new one each time.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def describe(value: Any) -> str:
    """A short, safe ``repr`` for error messages (bounded for huge or deep values)."""
    return _REPR.repr(value)


def text_problem(value: str) -> str | None:
    """What makes ``value`` unstorable as text, or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii() and _SURROGATE.search(value):
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def check_text(value: str, where: str) -> str:
    """Return ``value`` if every database can store it as text.

    Raises:
        ValidationError: It holds NUL or a lone surrogate.
    """
    if "\x00" in value or not value.isascii():
        problem = text_problem(value)
        if problem is not None:
            raise ValidationError(f"{where} {problem}")
    return value


class _Refused(Exception):
    """A JSON value breaks a rule; ``path`` grows as it travels up to the top."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.path: list[str] = []


def _scalar(value: Any) -> Any:
    """``value`` as stored (``-0.0`` as ``0.0``, subclasses as their base type: converted
    by the base type's own method, so a subclass cannot smuggle another value in)."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        text = str.__str__(value)
        problem = text_problem(text)
        if problem is not None:
            raise _Refused(f"text {problem}")
        return text
    if isinstance(value, int):
        number = int.__int__(value)
        if not INT64[0] <= number <= INT64[1]:
            raise _Refused("integers must fit in 64 bits")
        return number
    if isinstance(value, float):
        real = float.__float__(value)
        if not math.isfinite(real):
            raise _Refused(f"{real!r} is not valid JSON")
        if abs(real) >= JSON_FLOAT_LIMIT:
            raise _Refused("floats must be smaller than 1e16 in magnitude")
        return real + 0.0
    raise _Refused(
        f"{type(value).__name__} is not JSON (use dict, list, str, int, float, bool or None)"
    )


def _clean(value: Any, depth: int) -> Any:
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            raise _Refused(f"nested more than {MAX_JSON_DEPTH} levels deep")
        out = {}
        for key, item in value.items():
            name = str.__str__(key) if isinstance(key, str) else None
            if name is None or text_problem(name) is not None:
                raise _Refused(f"key {describe(key)} is not valid text")
            try:
                out[name] = _clean(item, depth + 1)
            except _Refused as refused:
                refused.path.append(f"[{describe(key)}]")
                raise
        return out
    if isinstance(value, list):
        if depth >= MAX_JSON_DEPTH:
            raise _Refused(f"nested more than {MAX_JSON_DEPTH} levels deep")
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_clean(item, depth + 1))
            except _Refused as refused:
                refused.path.append(f"[{i}]")
                raise
        return items
    return _scalar(value)


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` (a dict or list) meets the rules exactly as it is: built-in
    types only, no ``-0.0``. The common case, checked without making a copy; False
    sends the value through :func:`_clean`, which refuses it or normalizes it."""
    if depth >= MAX_JSON_DEPTH:
        return False
    if type(value) is dict:
        for key in value:
            if (
                type(key) is not str
                or "\x00" in key
                or (not key.isascii() and _SURROGATE.search(key))
            ):
                return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            if "\x00" in item or (not item.isascii() and _SURROGATE.search(item)):
                return False
        elif kind is dict or kind is list:
            if not _plain(item, depth + 1):
                return False
        elif kind is float:
            if not -JSON_FLOAT_LIMIT < item < JSON_FLOAT_LIMIT:
                return False
            if item == 0.0 and math.copysign(1.0, item) < 0:  # -0.0: stored as 0.0
                return False
        elif kind is int:
            if not INT64[0] <= item <= INT64[1]:
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def clean_json(value: Any, where: str) -> Any:
    """A detached copy of ``value`` as every database stores it.

    Raises:
        ValidationError: It breaks a rule of this module; the message names where.
    """
    try:
        return _clean(value, 0)
    except _Refused as refused:
        inside = "".join(reversed(refused.path))
        raise ValidationError(f"{where}{inside}: {refused}") from None


def check_json(value: Any, where: str) -> None:
    """Check ``value`` against the rules without encoding it.

    Raises:
        ValidationError: It breaks a rule of this module; the message names where.
    """
    kind = type(value)
    if (kind is dict or kind is list) and _plain(value, 0):
        return
    clean_json(value, where)


def dump_json(value: Any, where: str) -> str:
    """Compact JSON text of ``value`` as every database stores it.

    Raises:
        ValidationError: It breaks a rule of this module; the message names where.
    """
    kind = type(value)
    if (kind is dict or kind is list) and _plain(value, 0):
        return _ENCODER.encode(value)  # the common case: checked without a copy
    if kind is str and value.isascii() and "\x00" not in value:
        return _ENCODER.encode(value)
    return _ENCODER.encode(clean_json(value, where))
