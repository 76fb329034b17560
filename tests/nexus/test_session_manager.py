"""NexusSessionManager: in-memory methods, and the persistent ones on every database."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from nexus_support import T0, Clock

from dataflow import DuplicateKeyError
from kaizen.integrations.nexus import (
    CrossChannelSession,
    NexusSessionManager,
    SessionExistsError,
    SessionStorage,
    SessionValidationError,
    session_manager,
)

Manager = NexusSessionManager


# -- in memory ----------------------------------------------------------------


@pytest.fixture
def memory(clock: Clock) -> Manager:
    return NexusSessionManager(cleanup_interval=60, clock=clock)


def test_create_get_update_and_read_state_in_memory(memory: Manager, clock: Clock) -> None:
    session = memory.create_session(user_id="u", ttl_hours=2)
    assert memory.storage is None
    assert memory.get_session(session.session_id) is session
    assert session.expires_at == T0 + timedelta(hours=2)
    clock.advance(minutes=30)
    assert memory.update_session_state(session.session_id, {"k": "v"}, channel="api")
    state = memory.get_session_state(session.session_id, channel="cli")
    assert state == {"k": "v"}
    assert session.channel_activity == {"api": clock.now, "cli": clock.now}
    assert session.expires_at == clock.now + timedelta(hours=2)
    assert memory.bind_memory_pool(session.session_id, "pool-1")
    assert session.memory_pool_id == "pool-1"


def test_missing_or_expired_sessions_in_memory(memory: Manager, clock: Clock) -> None:
    session = memory.create_session("s1", "u", ttl_hours=1)
    clock.advance(hours=1)
    assert memory.get_session("s1") is None
    assert "s1" not in memory.sessions
    assert not memory.update_session_state(session.session_id, {"k": 1})
    assert memory.get_session_state("s1") is None
    assert not memory.bind_memory_pool("s1", "pool")


def test_create_refuses_a_live_duplicate_but_reuses_an_expired_id(
    memory: Manager, clock: Clock
) -> None:
    memory.create_session("s1", "u")
    with pytest.raises(SessionExistsError):
        memory.create_session("s1", "other")
    with pytest.raises(DuplicateKeyError):  # the error is also DataFlow's
        memory.create_session("s1", "other")
    clock.advance(hours=2)
    assert memory.create_session("s1", "other").user_id == "other"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": ""},
        {"user_id": "u", "ttl_hours": 0},
        {"user_id": "u", "ttl_hours": -1},
        {"user_id": "u", "ttl_hours": float("nan")},
        {"user_id": "u", "ttl_hours": True},
        {"user_id": "u", "session_id": ""},
    ],
)
async def test_bad_create_arguments_write_nothing(
    manager: Manager, storage: SessionStorage, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(SessionValidationError):
        manager.create_session(**kwargs)
    with pytest.raises(SessionValidationError):
        await manager.create_session_async(**kwargs)
    assert manager.sessions == {}
    assert await storage.count_active(now=T0) == 0


def test_periodic_cleanup_runs_on_create(memory: Manager, clock: Clock) -> None:
    memory.create_session("old", "u", ttl_hours=0.01)
    clock.advance(seconds=61)
    memory.create_session("new", "u")
    assert set(memory.sessions) == {"new"}
    disabled = NexusSessionManager(cleanup_interval=0, clock=clock)
    disabled.create_session("old", "u", ttl_hours=0.01)
    clock.advance(hours=1)
    disabled.create_session("new", "u")
    assert set(disabled.sessions) == {"old", "new"}


async def test_periodic_cleanup_only_evicts_the_cache_of_stored_sessions(
    manager: Manager, storage: SessionStorage, clock: Clock
) -> None:
    await manager.create_session_async("old", "u", ttl_hours=0.01)
    clock.advance(seconds=301)
    await manager.create_session_async("new", "u")
    assert set(manager.sessions) == {"new"}
    assert await manager.cleanup_expired_sessions_async() == 1  # "old", still stored
    assert await storage.list_by_user("u", include_expired=True, now=T0) != []


def test_cleanup_and_metrics_in_memory(memory: Manager, clock: Clock) -> None:
    memory.create_session("a", "u", ttl_hours=1)
    memory.create_session("b", "u", ttl_hours=3)
    memory.create_session("c", "u", ttl_hours=5)
    memory.update_session_state("b", {"x": 1}, "api")
    memory.update_session_state("c", {"x": 1}, "mcp")
    clock.advance(hours=2)
    metrics = memory.get_session_metrics()
    assert metrics == {
        "active_sessions": 2,
        "total_sessions": 3,
        "average_ttl_seconds": 4 * 3600.0,
        "channels_used": ["api", "mcp"],
    }
    assert memory.cleanup_expired_sessions() == 1
    assert memory.cleanup_expired_sessions() == 0
    assert NexusSessionManager().get_session_metrics()["average_ttl_seconds"] == 0.0


async def test_async_methods_without_storage_work_in_memory(memory: Manager, clock: Clock) -> None:
    session = await memory.create_session_async("s1", "u")
    assert await memory.update_session_state_async("s1", {"k": 1}, "api")
    assert await memory.bind_memory_pool_async("s1", "pool")
    # Read through the manager's MemorySessionStore: equal, not the same object.
    assert await memory.load_session_async("s1") == session
    assert session.state == {"k": 1} and session.memory_pool_id == "pool"
    assert await memory.delete_session_async("s1")
    assert not await memory.delete_session_async("s1")
    memory.create_session("s2", "u")
    clock.advance(hours=2)
    assert await memory.cleanup_expired_sessions_async() == 1


async def test_create_async_records_a_channel_and_an_initial_state(
    memory: Manager, clock: Clock
) -> None:
    session = await memory.create_session_async("s1", "u", channel="mcp", state={"k": 1})
    assert session.channel_activity == {"mcp": T0} and session.state == {"k": 1}
    assert (session.last_accessed, session.expires_at) == (T0, T0 + timedelta(hours=1))
    assert await memory.load_session_async("s1") == session
    with pytest.raises(SessionValidationError):
        await memory.create_session_async("s2", "u", channel="")
    with pytest.raises(SessionValidationError):
        await memory.create_session_async("s2", "u", state={"x": float("inf")})
    assert await memory.load_session_async("s2") is None


async def test_create_async_refuses_the_id_of_a_live_memory_only_session(
    memory: Manager, clock: Clock
) -> None:
    memory.create_session("local", "u")
    with pytest.raises(SessionExistsError):
        await memory.create_session_async("local", "other")
    assert memory.sessions["local"].user_id == "u"
    clock.advance(hours=2)  # expired: the id is free again
    assert (await memory.create_session_async("local", "other")).user_id == "other"
    assert await memory.update_session_state_async("local", {"k": 1}, "api")
    loaded = await memory.load_session_async("local")
    assert loaded is not None and loaded.state == {"k": 1}


def test_bad_manager_options_and_clocks() -> None:
    with pytest.raises(SessionValidationError):
        NexusSessionManager(cleanup_batch_size=0)
    with pytest.raises(SessionValidationError):
        NexusSessionManager(cleanup_batch_size=True)
    with pytest.raises(SessionValidationError, match="timezone-aware"):
        NexusSessionManager(clock=lambda: datetime(2030, 1, 1))


# -- persistent, two instances on one database --------------------------------


async def test_create_session_async_persists_with_its_ttl(
    manager: Manager, other_manager: Manager, clock: Clock
) -> None:
    session = await manager.create_session_async(user_id="u", ttl_hours=3)
    loaded = await other_manager.load_session_async(session.session_id)
    assert loaded == session
    assert loaded is not None and loaded.expires_at == T0 + timedelta(hours=3)
    with pytest.raises(DuplicateKeyError):
        await other_manager.create_session_async(session.session_id, "u")


async def test_two_instances_creating_one_id_at_once_yield_one_session(
    manager: Manager, other_manager: Manager, storage: SessionStorage
) -> None:
    results = await asyncio.gather(
        manager.create_session_async("same", "u1"),
        other_manager.create_session_async("same", "u2"),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DuplicateKeyError)
    [winner] = [r for r in results if isinstance(r, CrossChannelSession)]
    assert await storage.load("same", now=T0) == winner


async def test_update_reads_through_and_refreshes_by_own_ttl(
    manager: Manager, other_manager: Manager, clock: Clock
) -> None:
    session = await manager.create_session_async("s1", "u", ttl_hours=3)
    when = clock.advance(hours=1)
    assert await other_manager.update_session_state_async("s1", {"from": "other"}, "cli")
    loaded = await manager.load_session_async("s1")
    assert loaded is not None and loaded is not session
    assert loaded.state == {"from": "other"}
    assert loaded.channel_activity == {"cli": when}
    assert (loaded.last_accessed, loaded.expires_at) == (when, when + timedelta(hours=3))


async def test_update_merges_from_several_channels(manager: Manager) -> None:
    await manager.create_session_async("s1", "u")
    assert await manager.update_session_state_async("s1", {"a": 1, "n": {"x": 1}}, "api")
    assert await manager.update_session_state_async("s1", {"b": 2, "n": None}, "cli")
    assert await manager.update_session_state_async("s1", {"c": 3})
    loaded = await manager.load_session_async("s1")
    assert loaded is not None
    assert loaded.state == {"a": 1, "n": None, "b": 2, "c": 3}
    assert set(loaded.channel_activity) == {"api", "cli"}


async def test_update_returns_false_only_for_missing_or_expired(
    manager: Manager, other_manager: Manager, storage: SessionStorage, clock: Clock
) -> None:
    assert not await manager.update_session_state_async("missing", {"k": 1})
    await manager.create_session_async("s1", "u", ttl_hours=1)
    clock.advance(hours=1)
    assert not await manager.update_session_state_async("s1", {"k": 1}, "api")
    assert not await other_manager.update_session_state_async("s1", {"k": 1}, "api")
    [stored] = await storage.list_by_user("u", include_expired=True, now=T0)
    assert (stored.state, stored.channel_activity) == ({}, {})
    assert "s1" not in manager.sessions


@pytest.mark.parametrize(
    ("updates", "channel"),
    [
        ({"x": float("nan")}, "api"),
        ({"x": object()}, "api"),
        ({1: "int key"}, "api"),
        ({"ok": 1, "bad": {2, 3}}, "api"),
        ("not a dict", "api"),
        ({"x": 1}, ""),
    ],
)
async def test_bad_updates_write_nothing(
    manager: Manager, other_manager: Manager, clock: Clock, updates: Any, channel: str
) -> None:
    session = await manager.create_session_async("s1", "u")
    before = await manager.load_session_async("s1")
    clock.advance(minutes=5)
    for instance in (manager, other_manager):
        with pytest.raises(SessionValidationError):
            await instance.update_session_state_async("s1", updates, channel)
    assert await other_manager.load_session_async("s1") == before == session


async def test_load_never_serves_a_stale_cache(manager: Manager, other_manager: Manager) -> None:
    await manager.create_session_async("s1", "u")
    for i in range(5):
        assert await other_manager.update_session_state_async("s1", {"counter": i}, "api")
        loaded = await manager.load_session_async("s1")
        assert loaded is not None and loaded.state["counter"] == i
    assert await other_manager.delete_session_async("s1")
    assert await manager.load_session_async("s1") is None
    assert "s1" not in manager.sessions


async def test_delete_reaches_storage_without_a_cached_copy(
    manager: Manager, other_manager: Manager, clock: Clock
) -> None:
    await manager.create_session_async("s1", "u")
    assert "s1" not in other_manager.sessions
    assert await other_manager.delete_session_async("s1") is True
    assert await other_manager.delete_session_async("s1") is False
    assert await manager.delete_session_async("s1") is False  # cached, but already gone
    assert await manager.load_session_async("s1") is None
    await manager.create_session_async("expired", "u")
    clock.advance(hours=2)
    assert await other_manager.delete_session_async("expired") is True


async def test_bind_memory_pool_async_reads_through(
    manager: Manager, other_manager: Manager, clock: Clock
) -> None:
    session = await manager.create_session_async("s1", "u")
    assert await other_manager.bind_memory_pool_async("s1", "pool-7")
    assert session.memory_pool_id is None  # a cached copy is not a source of truth
    loaded = await manager.load_session_async("s1")
    assert loaded is not None and loaded.memory_pool_id == "pool-7"
    assert await manager.bind_memory_pool_async("s1", "pool-8")
    assert manager.sessions["s1"].memory_pool_id == "pool-8"
    with pytest.raises(SessionValidationError):
        await manager.bind_memory_pool_async("s1", "")
    assert not await other_manager.bind_memory_pool_async("missing", "pool")
    clock.advance(hours=2)
    assert not await manager.bind_memory_pool_async("s1", "pool-9")


async def test_memory_only_sessions_stay_in_memory(
    manager: Manager, storage: SessionStorage
) -> None:
    manager.create_session("local", "u")
    assert await manager.update_session_state_async("local", {"k": 1}, "api")
    assert await manager.bind_memory_pool_async("local", "pool")
    loaded = await manager.load_session_async("local")
    assert loaded is not None and loaded.state == {"k": 1}
    assert await storage.count_active(now=T0) == 0
    assert await manager.delete_session_async("local")
    assert not await manager.delete_session_async("local")


async def test_cleanup_counts_each_session_once(
    manager: Manager, storage: SessionStorage, clock: Clock
) -> None:
    small = NexusSessionManager(storage_backend=storage, clock=clock, cleanup_batch_size=2)
    for i in range(3):  # stored and cached
        await small.create_session_async(f"stored-{i}", "u", ttl_hours=1)
    for i in range(2):  # memory only
        small.create_session(f"local-{i}", "u", ttl_hours=1)
    for i in range(4):  # stored, cached elsewhere
        await manager.create_session_async(f"elsewhere-{i}", "u", ttl_hours=1)
    await small.create_session_async("live", "u", ttl_hours=5)
    clock.advance(hours=1)
    assert await small.cleanup_expired_sessions_async() == 3 + 2 + 4
    assert set(small.sessions) == {"live"}
    remaining = await storage.list_by_user("u", include_expired=True, now=T0)
    assert [s.session_id for s in remaining] == ["live"]
    assert await small.cleanup_expired_sessions_async() == 0


async def test_cleanup_does_not_count_sessions_refreshed_elsewhere(
    manager: Manager, other_manager: Manager, clock: Clock
) -> None:
    await manager.create_session_async("s1", "u", ttl_hours=1)
    clock.advance(minutes=59)
    assert await other_manager.update_session_state_async("s1", {"k": 1})
    manager.sessions["s1"].expires_at = clock.now  # this instance's copy looks expired
    clock.advance(minutes=2)
    assert await manager.cleanup_expired_sessions_async() == 0
    assert await manager.load_session_async("s1") is not None


def test_sessions_are_cross_channel_sessions(memory: Manager) -> None:
    assert isinstance(memory.create_session(user_id="u"), CrossChannelSession)


async def test_the_cache_of_stored_sessions_is_bounded(
    manager: NexusSessionManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_manager, "STORED_CACHE", 3)
    made = [(await manager.create_session_async(user_id=f"u{i}")).session_id for i in range(5)]
    assert list(manager.sessions) == made[2:]  # the oldest went
    await manager.update_session_state_async(made[0], {"k": 1}, "api")  # read through
    loaded = await manager.load_session_async(made[0])
    assert loaded is not None and loaded.state == {"k": 1}
    assert list(manager.sessions) == [*made[3:], made[0]]  # loaded: the newest now
