"""Sessions as flat rows: the one layout both stores keep, validated on the way in.

:class:`~kaizen.integrations.nexus.storage.SessionStorage` writes these rows to
table ``cross_channel_session``; :class:`~kaizen.integrations.nexus.memory.MemorySessionStore`
keeps them in a dict. Sharing the conversion and the checks is what makes the two
stores refuse the same input with the same errors.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kaizen.integrations.nexus._checks import (
    check_channel,
    check_channel_activity,
    check_id,
    check_json_object,
    check_stored_time,
    utcnow,
)
from kaizen.integrations.nexus.models import CrossChannelSession

__all__ = ["Merge", "as_of", "from_row", "merge_of", "to_row"]


def to_row(session: CrossChannelSession) -> dict[str, Any]:
    """Validate ``session`` (it may have been mutated since construction) and flatten it.

    The row holds detached copies: later changes to ``session`` do not reach it.

    Raises:
        SessionValidationError: A field is invalid, or a time is before year 1000.
    """
    activity = check_channel_activity(session.channel_activity)
    for name, when in activity.items():
        check_stored_time(when, f"channel_activity[{name!r}]")
    pool = session.memory_pool_id
    return {
        "id": check_id(session.session_id, "session_id"),
        "user_id": check_id(session.user_id, "user_id"),
        "session_created_at": check_stored_time(session.created_at, "created_at"),
        "last_accessed": check_stored_time(session.last_accessed, "last_accessed"),
        "expires_at": check_stored_time(session.expires_at, "expires_at"),
        "ttl_seconds": int(session.ttl.total_seconds()),
        "state_json": check_json_object(session.state, "state"),
        "channel_activity_json": {name: when.isoformat() for name, when in activity.items()},
        "memory_pool_id": None if pool is None else check_id(pool, "memory_pool_id"),
    }


_fromisoformat = datetime.fromisoformat


@functools.lru_cache(maxsize=256)
def _ttl(seconds: int) -> timedelta:
    """The TTL of ``ttl_seconds`` (immutable, so shared: sessions use few TTLs)."""
    return timedelta(seconds=seconds)


def from_row(row: dict[str, Any], *, detach: bool = False) -> CrossChannelSession:
    """The session a row holds (not validated again: rows are validated when written).

    Args:
        row: A row as :func:`to_row` makes it (or as the database returns it).
        detach: Copy the state, so the session can be changed without changing ``row``.
    """
    activity = row["channel_activity_json"]
    state = row["state_json"]
    if not state:
        state = {}
    elif detach:
        state = copy.deepcopy(state)
    return CrossChannelSession._restore(
        {
            "session_id": row["id"],
            "user_id": row["user_id"],
            "created_at": row["session_created_at"],
            "last_accessed": row["last_accessed"],
            "expires_at": row["expires_at"],
            "state": state,
            "channel_activity": (
                {k: _fromisoformat(v) for k, v in activity.items()} if activity else {}
            ),
            "memory_pool_id": row["memory_pool_id"],
            "ttl": _ttl(row["ttl_seconds"]),
        }
    )


def as_of(now: datetime | None) -> datetime:
    """The time expiry is judged at: ``now`` in UTC, or the current time.

    Raises:
        SessionValidationError: ``now`` is not an aware datetime from year 1000 on.
    """
    return utcnow() if now is None else check_stored_time(now, "now")


@dataclass(frozen=True, slots=True)
class Merge:
    """One validated state merge (see ``merge_state`` of the stores).

    Attributes:
        state: The top-level keys to set in the state.
        activity: Channel name -> ISO time to set in the channel activity (empty
            without a channel).
        values: The new ``last_accessed`` and ``expires_at``.
        now: The time of the merge; only a session live at ``now`` is merged into.
    """

    state: dict[str, Any]
    activity: dict[str, str]
    values: dict[str, datetime]
    now: datetime


def merge_of(updates: Any, channel: Any, now: datetime, expires_at: datetime) -> Merge:
    """Validate the arguments of a merge.

    Raises:
        SessionValidationError: Bad updates, channel or times.
    """
    when = check_stored_time(now, "now")
    state = check_json_object(updates, "state update")
    name = check_channel(channel)
    activity = {} if name is None else {name: when.isoformat()}
    values = {"last_accessed": when, "expires_at": check_stored_time(expires_at, "expires_at")}
    return Merge(state, activity, values, when)
