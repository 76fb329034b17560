"""Input checks shared by the session model, storage and manager.

Every check either returns a clean value or raises
:class:`~kaizen.integrations.nexus.errors.SessionValidationError`; callers run
them before touching memory or the database, so bad input writes nothing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import INT64, MAX_JSON_DEPTH, clean_json, describe, text_problem
from kaizen.integrations.nexus.errors import SessionValidationError

__all__ = [
    "EARLIEST",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_TTL_HOURS",
    "check_channel",
    "check_channel_activity",
    "check_count",
    "check_id",
    "check_json_object",
    "check_stored_time",
    "check_time",
    "check_ttl",
    "later",
    "ttl_from_hours",
    "utcnow",
]

#: Ids are indexed columns, which hold at most this many characters on every database.
MAX_ID_LENGTH = 255
#: Levels of nested objects/arrays a state may have, counting the state itself
#: (DataFlow's JSON rule, the same on every database).
MAX_DEPTH = MAX_JSON_DEPTH
#: The longest TTL: a century.
MAX_TTL_HOURS = 100 * 366 * 24
#: The earliest time a store keeps (MySQL's DATETIME range starts at year 1000).
EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def check_id(value: Any, what: str) -> str:
    """Return ``value`` if it is a non-empty str of at most :data:`MAX_ID_LENGTH` characters,
    without surrounding whitespace."""
    if not isinstance(value, str) or not value:
        raise SessionValidationError(f"{what} must be a non-empty str, got {describe(value)}")
    if value != value.strip():
        # MySQL's collations compare 'a ' equal to 'a': such ids would alias others.
        raise SessionValidationError(f"{what} must not start or end with whitespace")
    if len(value) > MAX_ID_LENGTH or text_problem(value) is not None:
        raise SessionValidationError(
            f"{what} must hold at most {MAX_ID_LENGTH} characters, no NUL or lone surrogate"
        )
    return value


def check_channel(value: Any) -> str | None:
    """Return a channel name (non-empty str) or None."""
    return None if value is None else _channel_name(value)


def _channel_name(value: Any) -> str:
    if not isinstance(value, str) or not value or text_problem(value) is not None:
        raise SessionValidationError(f"channel must be a non-empty str, got {describe(value)}")
    if len(value) > MAX_ID_LENGTH:
        raise SessionValidationError(f"channel names hold at most {MAX_ID_LENGTH} characters")
    return value


def check_time(value: Any, what: str) -> datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused (they mean local time)."""
    if not isinstance(value, datetime):
        raise SessionValidationError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise SessionValidationError(f"{what} must be timezone-aware, got naive {value!r}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise SessionValidationError(f"{what} is out of range: {value.isoformat()}") from None


def check_stored_time(value: Any, what: str) -> datetime:
    """Return ``value`` in UTC (as :func:`check_time`), refusing times before year 1000.

    Every database stores times from year 1000 to 9999, so both stores refuse
    earlier ones the same way, before anything is written.
    """
    when = check_time(value, what)
    if when < EARLIEST:
        raise SessionValidationError(
            f"{what} must be from year 1000 to 9999 (UTC), got {when.isoformat()}"
        )
    return when


def check_count(value: Any, what: str) -> int:
    """Return ``value`` if it is a non-negative 64-bit int (a limit or an offset)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64[1]:
        raise SessionValidationError(
            f"{what} must be a non-negative 64-bit int, got {describe(value)}"
        )
    return value


def check_ttl(value: Any) -> timedelta:
    """Return a TTL as a positive whole number of seconds."""
    if not isinstance(value, timedelta):
        raise SessionValidationError(f"ttl must be a timedelta, got {type(value).__name__}")
    seconds = round(value.total_seconds())
    if seconds < 1:
        raise SessionValidationError(f"ttl must be at least one second, got {value!r}")
    if seconds > MAX_TTL_HOURS * 3600:
        raise SessionValidationError(f"ttl must be at most {MAX_TTL_HOURS} hours (a century)")
    return timedelta(seconds=seconds)


def later(when: datetime, ttl: timedelta) -> datetime:
    """``when + ttl``, refused when past the last representable time."""
    try:
        return when + ttl
    except OverflowError:
        raise SessionValidationError(
            f"{when.isoformat()} plus a TTL of {ttl} is past the year 9999"
        ) from None


def ttl_from_hours(hours: Any) -> timedelta:
    """Return the TTL for ``ttl_hours`` (a positive, finite number of hours)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours):
        raise SessionValidationError(f"ttl_hours must be a finite number, got {hours!r}")
    if not 0 < hours <= MAX_TTL_HOURS:
        raise SessionValidationError(
            f"ttl_hours must be positive and at most {MAX_TTL_HOURS} (a century), got {hours!r}"
        )
    return check_ttl(timedelta(hours=hours))


def check_json_object(value: Any, what: str) -> dict[str, Any]:
    """Return a detached copy of a JSON object that every database stores identically.

    DataFlow's one JSON rule (:mod:`dataflow.jsonvalues`): dicts with str keys,
    lists, text without NUL or lone surrogates, bool, None, 64-bit ints and
    floats below 1e16 in magnitude (``-0.0`` becomes ``0.0``), nested at most
    :data:`MAX_DEPTH` levels. Anything else (tuples, sets, NaN, int keys...)
    would be refused or silently changed by some database's JSON column, so it
    is refused here, on every database.
    """
    if not isinstance(value, dict):
        raise SessionValidationError(f"{what} must be a dict, got {type(value).__name__}")
    try:
        result: dict[str, Any] = clean_json(value, what)
    except ValidationError as exc:
        raise SessionValidationError(str(exc)) from None
    return result


def check_channel_activity(value: Any) -> dict[str, datetime]:
    """Return a copy of a channel -> aware UTC datetime mapping."""
    if not isinstance(value, dict):
        raise SessionValidationError(f"channel_activity must be a dict, got {type(value).__name__}")
    result: dict[str, datetime] = {}
    for channel, when in value.items():
        result[_channel_name(channel)] = check_time(when, f"channel_activity[{channel!r}]")
    return result
