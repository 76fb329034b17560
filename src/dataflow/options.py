"""Connection options: given as URL query parameters or ``DataFlow(url, **options)``.

Every option has one parser and one default here; a dialect declares which of
them it accepts. A keyword argument wins over the same option in the URL.
Unknown options, and values a parser refuses, raise
:class:`~dataflow.errors.ConfigurationError` naming the option (never the URL).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from dataflow.errors import ConfigurationError

__all__ = ["Option", "resolve_options"]

_OFF = ("", "0", "none", "off")


def _seconds(name: str, raw: Any, *, allow_off: bool = False, zero: bool = False) -> float | None:
    if allow_off and (raw is None or (isinstance(raw, str) and raw.strip().lower() in _OFF)):
        return None
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if allow_off and value == 0:
        return None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        hint = " (0 or 'off' turns it off)" if allow_off else ""
        what = "a non-negative" if zero else "a positive"
        raise ConfigurationError(f"option {name} must be {what} number of seconds{hint}")
    if value > 86_400 * 365:
        raise ConfigurationError(f"option {name} is longer than a year")
    return value


def _count(name: str, raw: Any, low: int, high: int = 100_000) -> int:
    value = raw
    if isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"option {name} must be an integer from {low} to {high}")
    return value


def _choice(name: str, raw: Any, choices: Collection[str]) -> str:
    value = raw.strip().lower() if isinstance(raw, str) else ""
    if value not in choices:
        raise ConfigurationError(f"option {name} must be one of: {', '.join(choices)}")
    return value


def _path(name: str, raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
        raise ConfigurationError(f"option {name} must be a file path")
    return raw


@dataclass(frozen=True)
class Option:
    """One connection option: its parser and its default (None: unset)."""

    parse: Callable[[str, Any], Any]
    default: Any = None


def seconds(default: float, *, zero: bool = False) -> Option:
    """A positive number of seconds (or zero, with ``zero``)."""
    return Option(lambda name, raw: _seconds(name, raw, zero=zero), default)


def optional_seconds() -> Option:
    """A positive number of seconds, or off (``0``, ``off``, ``none``); off by default."""
    return Option(lambda name, raw: _seconds(name, raw, allow_off=True), None)


def count(default: int | None, *, low: int = 1, high: int = 100_000) -> Option:
    """An integer from ``low`` to ``high`` (``default`` None: unset unless given)."""
    return Option(lambda name, raw: _count(name, raw, low, high), default)


def choice(default: str | None, *choices: str) -> Option:
    """One of ``choices`` (case-insensitive)."""
    return Option(lambda name, raw: _choice(name, raw, choices), default)


def file_path() -> Option:
    """A file path; unset by default."""
    return Option(_path)


#: What every dialect accepts: pool size and the three time limits.
COMMON = {
    "pool_size": count(10),
    "connect_timeout": seconds(10.0),
    "pool_timeout": seconds(30.0),
    "command_timeout": optional_seconds(),
}


def resolve_options(
    spec: Mapping[str, Option], query: Mapping[str, str], keywords: Mapping[str, Any], family: str
) -> dict[str, Any]:
    """Every option of ``spec`` with its value: keyword, else URL query, else default.

    Raises:
        ConfigurationError: An option ``spec`` does not know, or a refused value.
    """
    unknown = (set(query) | set(keywords)) - set(spec)
    if unknown:
        raise ConfigurationError(
            f"unknown DataFlow option(s) for {family}: {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(spec))})"
        )
    values: dict[str, Any] = {}
    for name, option in spec.items():
        if name in keywords:
            raw = keywords[name]
        elif name in query:
            raw = query[name]
        else:
            values[name] = option.default
            continue
        values[name] = option.parse(name, raw)
    return values
