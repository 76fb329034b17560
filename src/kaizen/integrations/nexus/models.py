"""The cross-channel session: one user's state, shared by the API, CLI and MCP channels."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kaizen.integrations.nexus._checks import (
    check_channel,
    check_channel_activity,
    check_id,
    check_json_object,
    check_time,
    check_ttl,
    later,
    utcnow,
)

__all__ = ["DEFAULT_TTL", "CrossChannelSession"]

#: The TTL of a session created without one.
DEFAULT_TTL = timedelta(hours=1)
# Marks a time the caller did not give; __post_init__ replaces it.
_AUTO = datetime.min.replace(tzinfo=UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


@dataclass(kw_only=True)
class CrossChannelSession:
    """A user session reachable from several channels, with its own TTL.

    All times are timezone-aware UTC. Omitted times are derived: ``created_at``
    is now, ``last_accessed`` is ``created_at`` and ``expires_at`` is
    ``last_accessed + ttl``. Construction validates and copies every field, so
    an invalid session cannot exist.

    Attributes:
        session_id: Unique id (a UUID4 string by default).
        user_id: The owning user; a non-empty str.
        created_at: When the session was created.
        last_accessed: When a channel last used the session.
        expires_at: When the session expires unless refreshed.
        state: JSON object shared by all channels.
        channel_activity: Channel name -> time of its last activity.
        memory_pool_id: Bound shared memory pool, if any.
        ttl: How far each refresh pushes ``expires_at`` (whole seconds).

    Raises:
        SessionValidationError: A field is invalid (empty user id, naive time,
            non-JSON state, TTL under one second...).

    Example:
        >>> session = CrossChannelSession(user_id="user-123")
        >>> session.update_state({"message": "Hello"}, channel="api")
        >>> session.get_state(channel="cli")["message"]
        'Hello'
    """

    session_id: str = field(default_factory=_new_id)
    user_id: str
    created_at: datetime = _AUTO
    last_accessed: datetime = _AUTO
    expires_at: datetime = _AUTO
    state: dict[str, Any] = field(default_factory=dict)
    channel_activity: dict[str, datetime] = field(default_factory=dict)
    memory_pool_id: str | None = None
    ttl: timedelta = DEFAULT_TTL

    def __post_init__(self) -> None:
        self.session_id = check_id(self.session_id, "session_id")
        self.user_id = check_id(self.user_id, "user_id")
        if self.memory_pool_id is not None:
            self.memory_pool_id = check_id(self.memory_pool_id, "memory_pool_id")
        self.ttl = check_ttl(self.ttl)
        if self.created_at is _AUTO:
            self.created_at = utcnow()
        self.created_at = check_time(self.created_at, "created_at")
        if self.last_accessed is _AUTO:
            self.last_accessed = self.created_at
        self.last_accessed = check_time(self.last_accessed, "last_accessed")
        if self.expires_at is _AUTO:
            self.expires_at = later(self.last_accessed, self.ttl)
        self.expires_at = check_time(self.expires_at, "expires_at")
        self.state = check_json_object(self.state, "state")
        self.channel_activity = check_channel_activity(self.channel_activity)

    @classmethod
    def _restore(cls, fields: dict[str, Any]) -> CrossChannelSession:
        """Rebuild a session from a stored row's values (every field, in field order)
        without validating it again.

        Storage only holds sessions that were validated when written, and loads are
        on every request path: re-checking a deep state on each one is wasted work.
        """
        session = cls.__new__(cls)
        session.__dict__.update(fields)
        return session

    def is_expired(self, now: datetime | None = None) -> bool:
        """Whether the session has expired (at ``now``, default: the current time)."""
        current = utcnow() if now is None else check_time(now, "now")
        return current >= self.expires_at

    def refresh(self, channel: str | None = None, *, now: datetime | None = None) -> None:
        """Mark the session used: extend it by its own TTL and record ``channel``.

        Args:
            channel: The channel using the session (``"api"``, ``"cli"``, ``"mcp"``...).
            now: The time of use (default: the current time).
        """
        name = check_channel(channel)
        current = utcnow() if now is None else check_time(now, "now")
        self.last_accessed = current
        self.expires_at = later(current, self.ttl)
        if name is not None:
            self.channel_activity[name] = current

    def update_state(
        self, updates: dict[str, Any], channel: str | None = None, *, now: datetime | None = None
    ) -> None:
        """Merge ``updates`` into the state (shallow ``dict.update``) and refresh.

        Args:
            updates: Top-level keys to set; a None value is stored, not deleted.
            channel: The channel making the update.
            now: The time of the update (default: the current time).

        Raises:
            SessionValidationError: ``updates`` is not a JSON object; nothing changes.
        """
        clean = check_json_object(updates, "state update")
        check_channel(channel)
        self.state.update(clean)
        self.refresh(channel, now=now)

    def get_state(
        self, channel: str | None = None, *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Return a deep copy of the state, refreshing the session for ``channel``."""
        self.refresh(channel, now=now)
        return copy.deepcopy(self.state)
