"""Sessions across the Nexus channels: in memory, or shared through a :class:`SessionStorage`.

The synchronous methods work on this instance's memory only. The ``*_async``
methods work through a :class:`~kaizen.integrations.nexus.SessionStore` (the
storage backend; without one, a :class:`MemorySessionStore` of this instance),
the single source of truth: state updates are merged atomically by the store,
loads read through to it, and the in-memory copy is a convenience that is never
served as the result of a load. A session's TTL never changes, so it is the one
fact read from memory. Sessions made by the synchronous :meth:`create_session`
live in memory only; the async methods act on those in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from dataflow.retry import RetryPolicy
from kaizen.integrations.nexus._checks import (
    check_channel,
    check_count,
    check_id,
    check_json_object,
    check_time,
    later,
    ttl_from_hours,
    utcnow,
)
from kaizen.integrations.nexus._store import SessionStore
from kaizen.integrations.nexus.errors import SessionExistsError, SessionValidationError
from kaizen.integrations.nexus.memory import MemorySessionStore
from kaizen.integrations.nexus.models import DEFAULT_TTL, CrossChannelSession

__all__ = ["DEFAULT_TTL_HOURS", "STORED_CACHE", "NexusSessionManager"]

#: At most this many stored sessions are cached by a manager (a long-running server
#: sees every session of every user).
STORED_CACHE = 10_000
#: The TTL, in hours, of sessions created without one.
DEFAULT_TTL_HOURS: float = DEFAULT_TTL / timedelta(hours=1)


class NexusSessionManager:
    """Creates, updates, shares and expires cross-channel sessions.

    Args:
        cleanup_interval: Seconds between automatic in-memory cleanups run by
            :meth:`create_session`; 0 or None disables them.
        storage_backend: Where sessions persist: a :class:`SessionStorage`, or any
            :class:`~kaizen.integrations.nexus.SessionStore`; None keeps them in
            a :class:`MemorySessionStore` of this instance.
        cleanup_batch_size: Rows deleted per statement by
            :meth:`cleanup_expired_sessions_async`.
        clock: Returns the current time (timezone-aware); injectable for tests.
        retry_policy: How storage writes that lost a race (a deadlock, a
            serialization failure) are tried again.

    Attributes:
        sessions: This instance's in-memory sessions by id.
        storage: The storage backend given, or None.

    Example:
        >>> manager = NexusSessionManager(storage_backend=SessionStorage(db))  # doctest: +SKIP
        >>> session = await manager.create_session_async(user_id="user-123")  # doctest: +SKIP
        >>> sid = session.session_id  # doctest: +SKIP
        >>> await manager.update_session_state_async(sid, {"k": 1}, "api")  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        cleanup_interval: float | None = 300,
        storage_backend: SessionStore | None = None,
        *,
        cleanup_batch_size: int = 1000,
        clock: Callable[[], datetime] = utcnow,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if check_count(cleanup_batch_size, "cleanup_batch_size") < 1:
            raise SessionValidationError("cleanup_batch_size must be at least 1")
        self.sessions: dict[str, CrossChannelSession] = {}
        self.cleanup_interval = cleanup_interval
        self.cleanup_batch_size = cleanup_batch_size
        self.storage = storage_backend
        self._store: SessionStore = (
            storage_backend if storage_backend is not None else MemorySessionStore()
        )
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._clock = clock
        # Ids of cached sessions that live in the store (the rest exist only here).
        self._stored: set[str] = set()
        self._last_cleanup = self._now()

    # -- helpers -------------------------------------------------------------

    def _now(self) -> datetime:
        return check_time(self._clock(), "clock()")

    def _new_session(
        self, session_id: str | None, user_id: str, ttl_hours: float
    ) -> CrossChannelSession:
        ttl = ttl_from_hours(ttl_hours)
        given: dict[str, Any] = {} if session_id is None else {"session_id": session_id}
        return CrossChannelSession(**given, user_id=user_id, ttl=ttl, created_at=self._now())

    def _memory_only(self, session_id: str) -> bool:
        return session_id in self.sessions and session_id not in self._stored

    def _remember(self, session: CrossChannelSession) -> None:
        """Cache a stored session; beyond :data:`STORED_CACHE` of them the oldest go
        (storage holds them all: the cache only saves a TTL read)."""
        self.sessions.pop(session.session_id, None)  # re-inserted: the newest
        self.sessions[session.session_id] = session
        self._stored.add(session.session_id)
        if len(self._stored) > STORED_CACHE:
            for sid in [sid for sid in self.sessions if sid in self._stored][:-STORED_CACHE]:
                self._forget(sid)

    def _forget(self, session_id: str) -> CrossChannelSession | None:
        self._stored.discard(session_id)
        return self.sessions.pop(session_id, None)

    def _store_for(self, session_id: str) -> SessionStore | None:
        """The store the async methods act on, or None for a memory-only session.

        Raises:
            SessionValidationError: ``session_id`` is not a valid id.
        """
        check_id(session_id, "session_id")
        return None if self._memory_only(session_id) else self._store

    def _evict_expired(self, now: datetime) -> list[str]:
        expired = [sid for sid, s in self.sessions.items() if s.is_expired(now)]
        for sid in expired:
            del self.sessions[sid]
        return expired

    def _maybe_cleanup(self, now: datetime) -> None:
        interval = self.cleanup_interval
        if interval and now - self._last_cleanup > timedelta(seconds=interval):
            self.cleanup_expired_sessions()

    # -- in memory -----------------------------------------------------------

    def create_session(
        self, session_id: str | None = None, user_id: str = "", ttl_hours: float = DEFAULT_TTL_HOURS
    ) -> CrossChannelSession:
        """Create a session in this instance's memory (not persisted).

        Args:
            session_id: The id to use; a UUID4 string when None.
            user_id: The owning user; must be non-empty.
            ttl_hours: Lifetime after each use, in hours (positive).

        Returns:
            The new session.

        Raises:
            SessionValidationError: Bad user id, session id or TTL.
            SessionExistsError: A live session with this id is in memory.
        """
        session = self._new_session(session_id, user_id, ttl_hours)
        existing = self.sessions.get(session.session_id)
        if existing is not None and not existing.is_expired(session.created_at):
            raise SessionExistsError(f"session {session.session_id!r} already exists")
        self._forget(session.session_id)
        self.sessions[session.session_id] = session
        self._maybe_cleanup(session.created_at)
        return session

    def get_session(self, session_id: str) -> CrossChannelSession | None:
        """Return the in-memory session, or None (an expired one is dropped).

        Raises:
            SessionValidationError: ``session_id`` is not a valid id.
        """
        session = self.sessions.get(check_id(session_id, "session_id"))
        if session is not None and session.is_expired(self._now()):
            self._forget(session_id)
            return None
        return session

    def update_session_state(
        self, session_id: str, updates: dict[str, Any], channel: str | None = None
    ) -> bool:
        """Merge ``updates`` into an in-memory session; False if it is missing or expired.

        Raises:
            SessionValidationError: Bad updates or channel; nothing changes.
        """
        clean = check_json_object(updates, "state update")
        check_channel(channel)
        session = self.get_session(session_id)
        if session is None:
            return False
        session.update_state(clean, channel, now=self._now())
        return True

    def get_session_state(
        self, session_id: str, channel: str | None = None
    ) -> dict[str, Any] | None:
        """Return a copy of an in-memory session's state (refreshing it), or None."""
        check_channel(channel)
        session = self.get_session(session_id)
        return None if session is None else session.get_state(channel, now=self._now())

    def bind_memory_pool(self, session_id: str, memory_pool_id: str) -> bool:
        """Bind an in-memory session to a memory pool; False if it is missing or expired."""
        pool = check_id(memory_pool_id, "memory_pool_id")
        session = self.get_session(session_id)
        if session is None:
            return False
        session.memory_pool_id = pool
        return True

    def cleanup_expired_sessions(self) -> int:
        """Drop expired sessions from memory; return how many were dropped."""
        now = self._now()
        expired = self._evict_expired(now)
        self._stored.difference_update(expired)
        self._last_cleanup = now
        return len(expired)

    def get_session_metrics(self) -> dict[str, Any]:
        """Statistics of the in-memory sessions.

        Returns:
            ``active_sessions``, ``total_sessions`` (active and expired),
            ``average_ttl_seconds`` (of active sessions) and ``channels_used``
            (sorted names of channels active in live sessions).
        """
        now = self._now()
        active = [s for s in self.sessions.values() if not s.is_expired(now)]
        channels = sorted({c for s in active for c in s.channel_activity})
        ttls = [s.ttl.total_seconds() for s in active]
        return {
            "active_sessions": len(active),
            "total_sessions": len(self.sessions),
            "average_ttl_seconds": sum(ttls) / len(ttls) if ttls else 0.0,
            "channels_used": channels,
        }

    # -- persistent ----------------------------------------------------------

    async def create_session_async(
        self,
        session_id: str | None = None,
        user_id: str = "",
        ttl_hours: float = DEFAULT_TTL_HOURS,
        *,
        channel: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> CrossChannelSession:
        """Create a session and store it, in one write.

        Args:
            session_id: The id to use; a UUID4 string when None.
            user_id: The owning user; must be non-empty.
            ttl_hours: Lifetime after each use, in hours (positive).
            channel: The channel creating it: recorded in its activity at the
                creation time, as an update from that channel would be.
            state: The initial state (a JSON object), merged as an update is.

        Returns:
            The new session (also this instance's cached copy).

        Raises:
            SessionValidationError: Bad user id, session id, TTL, channel or
                state; nothing is written.
            SessionExistsError: The id is taken (in the store, or by a live
                memory-only session); a :class:`~dataflow.DuplicateKeyError`.
        """
        session = self._new_session(session_id, user_id, ttl_hours)
        if channel is not None or state is not None:
            session.update_state({} if state is None else state, channel, now=session.created_at)
        sid, now = session.session_id, session.created_at
        local = self.sessions.get(sid)
        if local is not None and self._memory_only(sid) and not local.is_expired(now):
            raise SessionExistsError(f"session {sid!r} already exists in memory")
        store = self._store
        await self.retry_policy.run(lambda: store.save(session))
        self._remember(session)
        self._maybe_cleanup(now)
        return session

    async def update_session_state_async(
        self, session_id: str, updates: dict[str, Any], channel: str | None = None
    ) -> bool:
        """Merge ``updates`` into a session's state atomically and refresh it.

        Works on any instance, whether or not it loaded the session. Concurrent
        updates of different keys from any number of instances all survive.

        Args:
            session_id: The session to update.
            updates: Top-level keys to set (``dict.update``; None values are stored).
            channel: The channel making the update, recorded in its activity.

        Returns:
            False only when the session does not exist or has expired.

        Raises:
            SessionValidationError: Bad updates or channel; nothing is written.
        """
        clean = check_json_object(updates, "state update")
        name = check_channel(channel)
        store = self._store_for(session_id)
        if store is None:
            return self.update_session_state(session_id, clean, name)
        ttl = await self._ttl(session_id)
        if ttl is None:
            return False
        now = self._now()
        expires = later(now, ttl)
        merged = await self.retry_policy.run(
            lambda: store.merge_state(session_id, clean, name, now, expires)
        )
        if not merged:
            self._forget(session_id)
            return False
        cached = self.sessions.get(session_id)
        if cached is not None:
            cached.update_state(clean, name, now=now)
        return True

    async def _ttl(self, session_id: str) -> timedelta | None:
        """The session's TTL: from memory if cached (it never changes), else from the store."""
        cached = self.sessions.get(session_id)
        if cached is not None and session_id in self._stored:
            return cached.ttl
        loaded = await self.load_session_async(session_id)
        return None if loaded is None else loaded.ttl

    async def bind_memory_pool_async(self, session_id: str, memory_pool_id: str) -> bool:
        """Bind a session to a memory pool, whether or not this instance loaded it.

        Args:
            session_id: The session to bind.
            memory_pool_id: The shared memory pool's id.

        Returns:
            False only when the session does not exist or has expired.

        Raises:
            SessionValidationError: Bad pool id; nothing is written.
        """
        pool = check_id(memory_pool_id, "memory_pool_id")
        store = self._store_for(session_id)
        if store is None:
            return self.bind_memory_pool(session_id, pool)
        now = self._now()
        if not await self.retry_policy.run(lambda: store.bind_memory_pool(session_id, pool, now)):
            self._forget(session_id)
            return False
        cached = self.sessions.get(session_id)
        if cached is not None:
            cached.memory_pool_id = pool
        return True

    async def delete_session_async(self, session_id: str) -> bool:
        """Delete a session everywhere, whether or not this instance cached it.

        Args:
            session_id: The session to delete (live or expired).

        Returns:
            True iff a session was deleted (from the store; from memory for a
            memory-only session).
        """
        store = self._store_for(session_id)
        cached = self._forget(session_id)
        if store is None:
            return cached is not None
        return await self.retry_policy.run(lambda: store.delete(session_id))

    async def load_session_async(self, session_id: str) -> CrossChannelSession | None:
        """Return the session as stored now (and cache it), or None if missing or expired.

        Every call reads through to the store: with a storage backend the result
        reflects every write acknowledged by any instance before the call. The returned object is
        also this instance's cached copy.

        Args:
            session_id: The session to load.
        """
        store = self._store_for(session_id)
        if store is None:
            return self.get_session(session_id)
        session = await store.load(session_id, now=self._now())
        if session is None:
            self._forget(session_id)
            return None
        self._remember(session)
        return session

    async def cleanup_expired_sessions_async(self) -> int:
        """Delete expired sessions from memory and the store; return how many sessions went.

        The store is emptied in batches of ``cleanup_batch_size``. A session is
        counted once: stored sessions by the store, memory-only ones here.
        """
        now = self._now()
        expired = self._evict_expired(now)
        total = sum(1 for sid in expired if sid not in self._stored)  # memory-only ones
        self._stored.difference_update(expired)
        self._last_cleanup = now
        store, batch = self._store, self.cleanup_batch_size
        while True:
            deleted = await self.retry_policy.run(lambda: store.cleanup_expired(batch, now=now))
            total += deleted
            if deleted < batch:
                return total
