"""The in-process session store the manager uses when no storage backend is configured.

It offers the methods of :class:`~kaizen.integrations.nexus.SessionStorage`
with the same semantics (shallow atomic merges, expiry judged against the time
given, batched cleanup, the same ordering and errors), for one process only.
Each method is atomic because no ``await`` separates its checks from its write.
Sessions go in and come out as copies, as they would through a database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaizen.integrations.nexus._checks import check_count, check_id
from kaizen.integrations.nexus._rows import as_of, from_row, merge_of, to_row
from kaizen.integrations.nexus.errors import SessionExistsError, SessionNotFoundError
from kaizen.integrations.nexus.models import CrossChannelSession

__all__ = ["MemorySessionStore"]


def _newest_first(row: dict[str, Any]) -> tuple[datetime, str]:
    return row["last_accessed"], row["id"]


class MemorySessionStore:
    """Sessions in this process's memory (lost when it ends); a
    :class:`~kaizen.integrations.nexus.SessionStore`.

    Example:
        >>> store = MemorySessionStore()
        >>> manager = NexusSessionManager(storage_backend=store)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}

    def _live(self, session_id: str, now: datetime) -> dict[str, Any] | None:
        row = self._rows.get(session_id)
        return row if row is not None and row["expires_at"] > now else None

    def _page(
        self,
        rows: list[dict[str, Any]],
        limit: int,
        offset: int,
        now: datetime | None,
        include_expired: bool,
    ) -> list[CrossChannelSession]:
        start, size = check_count(offset, "offset"), check_count(limit, "limit")
        if not include_expired:
            when = as_of(now)
            rows = [r for r in rows if r["expires_at"] > when]
        rows.sort(key=_newest_first, reverse=True)
        return [from_row(r, detach=True) for r in rows[start : start + size]]

    async def save(self, session: CrossChannelSession) -> str:
        """Store a new session (a copy) with its own times; return its id.

        Raises:
            SessionValidationError: The session holds invalid data; nothing is stored.
            SessionExistsError: A session with this id is stored (live or expired).
        """
        row = to_row(session)
        if row["id"] in self._rows:
            raise SessionExistsError(f"session {row['id']!r} is already stored")
        self._rows[row["id"]] = row
        return session.session_id

    async def update(self, session: CrossChannelSession) -> None:
        """Overwrite every stored field of ``session`` (last writer wins).

        Raises:
            SessionValidationError: The session holds invalid data; nothing changes.
            SessionNotFoundError: No session with this id is stored.
        """
        row = to_row(session)
        if row["id"] not in self._rows:
            raise SessionNotFoundError(f"session {row['id']!r} is not stored")
        self._rows[row["id"]] = row

    async def load(
        self, session_id: str, *, now: datetime | None = None, include_expired: bool = False
    ) -> CrossChannelSession | None:
        """A copy of the session, or None if absent or (unless ``include_expired``)
        expired at ``now``."""
        row = self._rows.get(session_id) if include_expired else self._live(session_id, as_of(now))
        return None if row is None else from_row(row, detach=True)

    async def delete(self, session_id: str) -> bool:
        """Delete a session (live or expired); return whether it was stored."""
        return self._rows.pop(session_id, None) is not None

    async def list_active(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        now: datetime | None = None,
        include_expired: bool = False,
    ) -> list[CrossChannelSession]:
        """Live sessions, most recently accessed first (ties: higher id first)."""
        return self._page(list(self._rows.values()), limit, offset, now, include_expired)

    async def list_by_user(
        self,
        user_id: str,
        include_expired: bool = False,
        limit: int = 100,
        *,
        offset: int = 0,
        now: datetime | None = None,
    ) -> list[CrossChannelSession]:
        """One user's sessions, most recently accessed first (ties: higher id first)."""
        rows = [r for r in self._rows.values() if r["user_id"] == user_id]
        return self._page(rows, limit, offset, now, include_expired)

    async def cleanup_expired(self, limit: int = 1000, *, now: datetime | None = None) -> int:
        """Delete at most ``limit`` sessions expired at ``now`` (soonest expired
        first); return how many went."""
        size, when = check_count(limit, "limit"), as_of(now)
        expired = sorted((r["expires_at"], r["id"]) for r in self._rows.values())
        gone = [sid for expires_at, sid in expired if expires_at <= when][:size]
        for sid in gone:
            del self._rows[sid]
        return len(gone)

    async def count_active(self, *, now: datetime | None = None) -> int:
        """The number of sessions live at ``now``."""
        when = as_of(now)
        return sum(1 for r in self._rows.values() if r["expires_at"] > when)

    async def merge_state(
        self,
        session_id: str,
        updates: dict[str, Any],
        channel: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Merge ``updates`` into a live session's state (``dict.update``), record
        ``channel``'s activity at ``now`` and set ``last_accessed``/``expires_at``.

        Returns:
            Whether a session live at ``now`` was updated.

        Raises:
            SessionValidationError: Bad updates, channel or times; nothing changes.
        """
        change = merge_of(updates, channel, now, expires_at)
        row = self._live(session_id, change.now)
        if row is None:
            return False
        row["state_json"].update(change.state)
        row["channel_activity_json"].update(change.activity)
        row.update(change.values)
        return True

    async def bind_memory_pool(self, session_id: str, memory_pool_id: str, now: datetime) -> bool:
        """Bind a session live at ``now`` to a memory pool; return whether it was.

        Raises:
            SessionValidationError: Bad pool id; nothing changes.
        """
        pool = check_id(memory_pool_id, "memory_pool_id")
        row = self._live(session_id, as_of(now))
        if row is None:
            return False
        row["memory_pool_id"] = pool
        return True
