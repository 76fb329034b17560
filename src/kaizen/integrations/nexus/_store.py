"""The store interface the session manager works through (database storage or in-memory).

A store persists and decides nothing: the manager computes refresh times and
TTLs, and the store applies each change in one atomic step, judging expiry
against the time it is given. Both stores implement it with the same semantics
and the same errors; the contract suite (``tests/contract/test_session_stores.py``)
holds them to it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from kaizen.integrations.nexus.models import CrossChannelSession

__all__ = ["SessionStore"]


class SessionStore(Protocol):
    """What :class:`~kaizen.integrations.nexus.NexusSessionManager` needs from a store.

    Implemented by :class:`~kaizen.integrations.nexus.SessionStorage` (a
    database) and :class:`~kaizen.integrations.nexus.MemorySessionStore` (this
    process). A session is live while ``expires_at > now``; reads default
    ``now`` to the current UTC time. ``merge_state`` and ``bind_memory_pool``
    touch only a session live at ``now`` and report whether they did.
    """

    async def save(self, session: CrossChannelSession) -> str: ...
    async def update(self, session: CrossChannelSession) -> None: ...
    async def load(
        self, session_id: str, *, now: datetime | None = None, include_expired: bool = False
    ) -> CrossChannelSession | None: ...
    async def delete(self, session_id: str) -> bool: ...
    async def list_active(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        now: datetime | None = None,
        include_expired: bool = False,
    ) -> list[CrossChannelSession]: ...
    async def list_by_user(
        self,
        user_id: str,
        include_expired: bool = False,
        limit: int = 100,
        *,
        offset: int = 0,
        now: datetime | None = None,
    ) -> list[CrossChannelSession]: ...
    async def cleanup_expired(self, limit: int = 1000, *, now: datetime | None = None) -> int: ...
    async def count_active(self, *, now: datetime | None = None) -> int: ...
    async def merge_state(
        self,
        session_id: str,
        updates: dict[str, Any],
        channel: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> bool: ...
    async def bind_memory_pool(
        self, session_id: str, memory_pool_id: str, now: datetime
    ) -> bool: ...
