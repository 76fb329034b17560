"""Persistence of cross-channel sessions in table ``cross_channel_session``.

:class:`SessionStorage` only persists: every method is one statement (or one
batch) through DataFlow, and expiry is always judged against a caller-supplied
or current UTC time in the database's own comparison. Decisions (refresh
times, read-through, cleanup loops) belong to
:class:`~kaizen.integrations.nexus.session_manager.NexusSessionManager`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dataflow import ConfigurationError, DataFlow, DuplicateKeyError, Index
from kaizen.integrations.nexus._checks import check_count, check_id
from kaizen.integrations.nexus._rows import as_of, from_row, merge_of, to_row
from kaizen.integrations.nexus.errors import SessionExistsError, SessionNotFoundError
from kaizen.integrations.nexus.models import CrossChannelSession

__all__ = ["TABLE", "CrossChannelSessionRecord", "SessionStorage"]

#: The table sessions are stored in.
TABLE = "cross_channel_session"


class CrossChannelSessionRecord:
    """Row layout of :data:`TABLE` (a DataFlow model; ``created_at``/``updated_at`` are managed).

    ``session_created_at`` keeps the session's own creation time, which may
    precede the row's insertion; ``ttl_seconds`` lets every instance extend a
    session by its own TTL.
    """

    id: str
    user_id: str
    session_created_at: datetime
    last_accessed: datetime
    expires_at: datetime
    ttl_seconds: int
    state_json: dict[str, Any]
    channel_activity_json: dict[str, Any]
    memory_pool_id: str | None


_INDEXES = (
    Index("expires_at"),
    Index("user_id", "last_accessed"),
    Index("last_accessed"),
)
_MODEL = CrossChannelSessionRecord.__name__
_NEWEST_FIRST = ["-last_accessed"]


def _register(db: DataFlow) -> None:
    """Register the row model on ``db`` once, however many storages share it."""
    existing = db.models.get(_MODEL)
    if existing is None:
        db.model(table=TABLE, indexes=_INDEXES)(CrossChannelSessionRecord)
    elif existing is not CrossChannelSessionRecord:
        raise ConfigurationError(f"another model named {_MODEL} is registered on this DataFlow")


def _live(now: datetime | None) -> dict[str, Any]:
    return {"expires_at": {"$gt": as_of(now)}}


class SessionStorage:
    """Sessions in a DataFlow database (SQLite, PostgreSQL or MySQL/MariaDB).

    Args:
        db: The DataFlow to store sessions in; the row model is registered on it
            (once, even when several storages share it) and its table is created
            on first use.

    A session is *live* while ``expires_at > now``; ``now`` defaults to the
    current UTC time and may be passed explicitly (keyword-only) to every read.
    It is a :class:`~kaizen.integrations.nexus.SessionStore`; its in-process
    twin is :class:`~kaizen.integrations.nexus.MemorySessionStore`. Limits and
    offsets are non-negative ints (else :class:`SessionValidationError`).
    """

    def __init__(self, db: DataFlow) -> None:
        _register(db)
        self.db = db

    # -- the spec's methods ---------------------------------------------------

    async def save(self, session: CrossChannelSession) -> str:
        """Insert a new session and return its id.

        The session keeps its own times (``created_at``, ``last_accessed``,
        ``expires_at``), as given: an imported or backdated session is as old, and
        expires when, it says.

        Raises:
            SessionValidationError: The session holds invalid data (a time before
                year 1000 included); nothing is written.
            SessionExistsError: A session with this id is already stored (live or
                expired); a :class:`~dataflow.DuplicateKeyError`.
        """
        row = to_row(session)
        try:
            await self.db.insert(_MODEL, row)
        except DuplicateKeyError as exc:
            raise SessionExistsError(f"session {row['id']!r} is already stored") from exc
        return session.session_id

    async def update(self, session: CrossChannelSession) -> None:
        """Overwrite every stored field of ``session`` (last writer wins).

        Prefer :meth:`merge_state` for state changes: it cannot lose a concurrent update.

        Raises:
            SessionValidationError: The session holds invalid data; nothing is written.
            SessionNotFoundError: No session with this id is stored.
        """
        values = to_row(session)
        session_id = values.pop("id")
        if not await self.db.update_where(_MODEL, {"id": session_id}, values):
            raise SessionNotFoundError(f"session {session_id!r} is not stored")

    async def load(
        self, session_id: str, *, now: datetime | None = None, include_expired: bool = False
    ) -> CrossChannelSession | None:
        """Return a live session.

        Args:
            session_id: The session's id.
            now: The time expiry is judged at (default: the current UTC time).
            include_expired: Also return it when expired but not yet cleaned up.

        Returns:
            The stored session, or None if it is absent or expired at ``now``.
        """
        where = {"id": session_id} if include_expired else {"id": session_id, **_live(now)}
        rows = await self.db.select(_MODEL, where, limit=1)
        return from_row(rows[0]) if rows else None

    async def delete(self, session_id: str) -> bool:
        """Delete a session (live or expired); return whether it was stored."""
        return await self.db.delete(_MODEL, session_id)

    async def list_active(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        now: datetime | None = None,
        include_expired: bool = False,
    ) -> list[CrossChannelSession]:
        """Return live sessions, most recently accessed first (ties: higher id first).

        Args:
            limit: At most this many sessions.
            offset: Skip this many first (pages are stable: the order is total).
            now: The time expiry is judged at (default: the current UTC time).
            include_expired: Also return expired sessions not yet cleaned up.

        Returns:
            The sessions of the page.
        """
        where = {} if include_expired else _live(now)
        check_count(limit, "limit")
        check_count(offset, "offset")
        rows = await self.db.select(
            _MODEL, where, order_by=_NEWEST_FIRST, limit=limit, offset=offset
        )
        return [from_row(r) for r in rows]

    async def list_by_user(
        self,
        user_id: str,
        include_expired: bool = False,
        limit: int = 100,
        *,
        offset: int = 0,
        now: datetime | None = None,
    ) -> list[CrossChannelSession]:
        """Return one user's sessions, most recently accessed first (ties: higher id first).

        Args:
            user_id: The owning user.
            include_expired: Also return expired sessions not yet cleaned up.
            limit: At most this many sessions.
            offset: Skip this many first.
            now: The time expiry is judged at (default: the current UTC time).

        Returns:
            The sessions of the page.
        """
        where: dict[str, Any] = {"user_id": user_id}
        if not include_expired:
            where.update(_live(now))
        check_count(limit, "limit")
        check_count(offset, "offset")
        rows = await self.db.select(
            _MODEL, where, order_by=_NEWEST_FIRST, limit=limit, offset=offset
        )
        return [from_row(r) for r in rows]

    async def cleanup_expired(self, limit: int = 1000, *, now: datetime | None = None) -> int:
        """Delete one batch of expired sessions, found through the ``expires_at`` index.

        Each call is one short DELETE of at most ``limit`` rows; call again while
        the result equals ``limit`` to empty a backlog (the manager's
        ``cleanup_expired_sessions_async`` does).

        Args:
            limit: The most rows this call deletes.
            now: Sessions with ``expires_at <= now`` are expired (default: the
                current UTC time).

        Returns:
            The number of sessions actually deleted.
        """
        where = {"expires_at": {"$lte": as_of(now)}}
        return await self.db.delete_where(_MODEL, where, limit=check_count(limit, "limit"))

    async def count_active(self, *, now: datetime | None = None) -> int:
        """Return the number of sessions live at ``now`` (default: the current UTC time)."""
        return await self.db.count(_MODEL, _live(now))

    # -- atomic primitives for the manager -----------------------------------

    async def merge_state(
        self,
        session_id: str,
        updates: dict[str, Any],
        channel: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        """Atomically merge ``updates`` into a live session's state and mark it used.

        One conditional UPDATE: the database applies ``dict.update`` to the state
        (and to the channel activity, when ``channel`` is given) and sets
        ``last_accessed = now`` and ``expires_at``, only while the session is
        live at ``now``. Concurrent merges of different keys all survive.

        Returns:
            Whether a live session was updated.

        Raises:
            SessionValidationError: Bad updates, channel or times; nothing is written.
        """
        change = merge_of(updates, channel, now, expires_at)
        merge = {"state_json": change.state}
        if change.activity:
            merge["channel_activity_json"] = change.activity
        where = {"id": session_id, **_live(change.now)}
        return await self.db.update_where(_MODEL, where, change.values, merge=merge) > 0

    async def bind_memory_pool(self, session_id: str, memory_pool_id: str, now: datetime) -> bool:
        """Bind a live session to a memory pool, in one conditional UPDATE.

        Returns:
            Whether the session exists and is live at ``now``.

        Raises:
            SessionValidationError: Bad pool id; nothing is written.
        """
        values = {"memory_pool_id": check_id(memory_pool_id, "memory_pool_id")}
        where = {"id": session_id, **_live(now)}
        return await self.db.update_where(_MODEL, where, values) > 0
