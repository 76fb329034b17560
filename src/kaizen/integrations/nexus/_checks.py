"""Input checks shared by the session model, storage and manager.

Every check either returns a clean value or raises
:class:`~kaizen.integrations.nexus.errors.SessionValidationError`; callers run
them before touching memory or the database, so bad input writes nothing.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from kaizen.integrations.nexus.errors import SessionValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "check_channel",
    "check_channel_activity",
    "check_id",
    "check_json_object",
    "check_time",
    "check_ttl",
    "ttl_from_hours",
    "utcnow",
]

#: Ids are indexed columns, which hold at most this many characters on every database.
MAX_ID_LENGTH = 255
#: Levels of nested objects/arrays a state may have, counting the state itself:
#: MariaDB refuses JSON nested 32 levels deep.
MAX_DEPTH = 31
_INT64 = (-(2**63), 2**63 - 1)
# PostgreSQL reads 1e16 back as the integer 10000000000000000: larger floats cannot round-trip.
_FLOAT_LIMIT = 1e16
# NUL is refused by PostgreSQL; lone surrogates cannot be encoded as UTF-8 at all.
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def check_id(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty str of at most :data:`MAX_ID_LENGTH` characters."""
    if not isinstance(value, str) or not value:
        raise SessionValidationError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > MAX_ID_LENGTH or _BAD_CHARS.search(value):
        raise SessionValidationError(
            f"{what} must hold at most {MAX_ID_LENGTH} characters, no NUL or lone surrogate"
        )
    return value


def check_channel(value: Any) -> str | None:
    """Return a channel name (non-empty str) or None."""
    return None if value is None else _channel_name(value)


def _channel_name(value: Any) -> str:
    if not isinstance(value, str) or not value or _BAD_CHARS.search(value):
        raise SessionValidationError(f"channel must be a non-empty str, got {value!r}")
    return value


def check_time(value: Any, what: str) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused (they mean local time)."""
    if not isinstance(value, datetime):
        raise SessionValidationError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise SessionValidationError(f"{what} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def check_ttl(value: Any) -> timedelta:
    """Return a TTL as a positive whole number of seconds."""
    if not isinstance(value, timedelta):
        raise SessionValidationError(f"ttl must be a timedelta, got {type(value).__name__}")
    seconds = round(value.total_seconds())
    if seconds < 1:
        raise SessionValidationError(f"ttl must be at least one second, got {value!r}")
    return timedelta(seconds=seconds)


def ttl_from_hours(hours: Any) -> timedelta:
    """Return the TTL for ``ttl_hours`` (a positive, finite number of hours)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        raise SessionValidationError(f"ttl_hours must be a finite number, got {hours!r}")
    if hours <= 0:
        raise SessionValidationError(f"ttl_hours must be positive, got {hours!r}")
    return check_ttl(timedelta(hours=hours))


def check_json_object(value: Any, what: str) -> dict[str, Any]:
    """Return a detached copy of a JSON object that every database stores identically.

    Accepted: dicts with str keys, lists, str (no NUL or lone surrogate), bool,
    None, 64-bit ints and floats of magnitude below 1e16 (``-0.0`` becomes
    ``0.0``), nested at most :data:`MAX_DEPTH` levels. Anything
    else (tuples, sets, NaN, int keys...) would be refused or silently changed
    by some database's JSON column, so it is refused here, on every database.
    """
    if not isinstance(value, dict):
        raise SessionValidationError(f"{what} must be a dict, got {type(value).__name__}")
    result: dict[str, Any] = _clean(value, what, 0)
    return result


def _clean(value: Any, path: str, depth: int) -> Any:
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        raise SessionValidationError(f"{path}: JSON nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if _BAD_CHARS.search(value):
            raise SessionValidationError(f"{path}: NUL or lone surrogate in a string")
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise SessionValidationError(f"{path}: integer {value} exceeds 64 bits")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SessionValidationError(f"{path}: {value!r} is not valid JSON")
        if abs(value) >= _FLOAT_LIMIT:
            raise SessionValidationError(f"{path}: floats must be below 1e16 in magnitude")
        return float(value) + 0.0
    if isinstance(value, list):
        return [_clean(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or _BAD_CHARS.search(key):
                raise SessionValidationError(f"{path}: key {key!r} is not a valid str")
            out[key] = _clean(item, f"{path}[{key!r}]", depth + 1)
        return out
    raise SessionValidationError(f"{path}: {type(value).__name__} is not JSON-serializable")


def check_channel_activity(value: Any) -> dict[str, datetime]:
    """Return a copy of a channel -> aware UTC datetime mapping."""
    if not isinstance(value, dict):
        raise SessionValidationError(f"channel_activity must be a dict, got {type(value).__name__}")
    result: dict[str, datetime] = {}
    for channel, when in value.items():
        result[_channel_name(channel)] = check_time(when, f"channel_activity[{channel!r}]")
    return result
