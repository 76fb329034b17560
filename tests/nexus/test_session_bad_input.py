"""Bad input to sessions: our errors, never a TypeError or OverflowError, nothing written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dataflow.errors import ValidationError
from kaizen.integrations.nexus import CrossChannelSession, NexusSessionManager, SessionStorage
from kaizen.integrations.nexus.errors import SessionValidationError


@pytest.fixture
def manager(storage: SessionStorage) -> NexusSessionManager:
    return NexusSessionManager(storage_backend=storage)


@pytest.mark.parametrize("ttl", [1e308, 10**20, float("inf"), 0, -1, "1"])
async def test_ttls_are_bounded(manager: NexusSessionManager, ttl: Any) -> None:
    with pytest.raises(SessionValidationError, match="ttl"):
        await manager.create_session_async(user_id="u", ttl_hours=ttl)
    assert await manager.storage.count_active() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "bad_id", [{}, [], None, 5, "", "x" * 256, "nul\x00", "\ud800", "a ", " a"]
)
async def test_bad_session_ids_are_validation_errors(
    manager: NexusSessionManager, bad_id: Any
) -> None:
    for call in (
        lambda: manager.load_session_async(bad_id),
        lambda: manager.update_session_state_async(bad_id, {"k": 1}),
        lambda: manager.delete_session_async(bad_id),
        lambda: manager.bind_memory_pool_async(bad_id, "pool"),
    ):
        with pytest.raises(SessionValidationError, match="session_id"):
            await call()
    with pytest.raises(SessionValidationError):
        manager.get_session(bad_id)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}, "nested"),
        ({"s": "\ud800"}, "surrogate"),
        ({"n": 2**64}, "64 bits"),
        ({"f": 1e300}, "1e16"),
        ([], "must be a dict"),
    ],
)
async def test_bad_state_updates_write_nothing(
    manager: NexusSessionManager, updates: Any, message: str
) -> None:
    session = await manager.create_session_async(user_id="u")
    with pytest.raises(SessionValidationError, match=message):
        await manager.update_session_state_async(session.session_id, updates, channel="api")
    loaded = await manager.load_session_async(session.session_id)
    assert loaded is not None and loaded.state == {}


def test_times_near_the_ends_of_the_calendar() -> None:
    late = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    with pytest.raises(SessionValidationError, match="past the year 9999"):
        CrossChannelSession(user_id="u", last_accessed=late)
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    with pytest.raises(SessionValidationError, match="out of range"):
        CrossChannelSession(user_id="u", created_at=early)


async def test_early_times_are_refused_by_storage_identically(storage: SessionStorage) -> None:
    old = datetime(900, 1, 1, tzinfo=UTC)
    session = CrossChannelSession(user_id="u", created_at=old, last_accessed=old)
    with pytest.raises(ValidationError, match="year 1000"):
        await storage.save(session)
    assert await storage.list_active(include_expired=True) == []


@pytest.mark.parametrize("user", ["alice ", " alice", "alice\n"])
async def test_user_ids_with_surrounding_whitespace_are_refused(
    manager: NexusSessionManager, user: str
) -> None:
    # MySQL compares 'a ' equal to 'a': such a user would read another's sessions.
    with pytest.raises(SessionValidationError, match="whitespace"):
        await manager.create_session_async(user_id=user)
