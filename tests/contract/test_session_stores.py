"""Both session stores, one contract: MemorySessionStore and SessionStorage on every target.

The manager works through :class:`~kaizen.integrations.nexus.SessionStore`, so
whatever it relies on is asserted here, identically, on the in-memory store and
on the database storage of each target (single servers and clusters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dataflow import DataFlow, DuplicateKeyError
from kaizen.integrations.nexus import (
    CrossChannelSession,
    MemorySessionStore,
    NexusSessionManager,
    SessionExistsError,
    SessionNotFoundError,
    SessionStorage,
    SessionStore,
    SessionValidationError,
)
from targets import TARGETS, target_urls

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(params=["memory", *TARGETS])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for the in-memory store, else the URL of an empty database of the target."""
    return None if request.param == "memory" else target_urls(request.param, tmp_path)[0]


@pytest.fixture
async def store(store_url: str | None) -> AsyncIterator[SessionStore]:
    """The store under test: in memory, or a SessionStorage on the target."""
    if store_url is None:
        yield MemorySessionStore()
        return
    async with DataFlow(store_url) as db:
        yield SessionStorage(db)


def make(sid: str, user: str = "u", at: datetime = T0, **fields: Any) -> CrossChannelSession:
    """A session created (and last used) at ``at``, expiring an hour later."""
    return CrossChannelSession(session_id=sid, user_id=user, created_at=at, ttl=HOUR, **fields)


async def everything(store: SessionStore) -> list[CrossChannelSession]:
    """Every stored session, expired ones included."""
    return await store.list_active(1000, include_expired=True, now=T0)


async def test_a_session_round_trips_exactly_and_detached(store: SessionStore) -> None:
    session = make(
        "s-full",
        state={"text": "héllo", "n": 3, "f": 0.1, "none": None, "nested": {"l": [1, True]}},
        channel_activity={"api": T0, "cli": T0 + timedelta(microseconds=7)},
        memory_pool_id="pool-1",
    )
    assert await store.save(session) == "s-full"
    session.state["changed"] = "after saving"  # the store kept its own copy
    loaded = await store.load("s-full", now=T0)
    assert loaded is not None and "changed" not in loaded.state
    del session.state["changed"]
    assert loaded == session and loaded.channel_activity["cli"].tzinfo is UTC
    loaded.state["n"] = 99  # and hands out copies
    assert await store.load("s-full", now=T0) == session


async def test_save_refuses_a_stored_id_and_update_needs_one(store: SessionStore) -> None:
    await store.save(make("dup", state={"v": 1}))
    for again in (make("dup", state={"v": 2}), make("dup", at=T0 - 3 * HOUR)):
        with pytest.raises(SessionExistsError):
            await store.save(again)
    with pytest.raises(DuplicateKeyError):  # also DataFlow's error
        await store.save(make("dup"))
    changed = make("dup", state={"v": 3}, memory_pool_id="pool-9")
    changed.update_state({"w": 4}, "mcp", now=T0 + timedelta(minutes=5))
    await store.update(changed)
    assert await store.load("dup", now=T0) == changed
    with pytest.raises(SessionNotFoundError):
        await store.update(make("missing"))
    assert [s.session_id for s in await everything(store)] == ["dup"]


async def test_merges_of_different_keys_all_survive(store: SessionStore) -> None:
    await store.save(make("s", state={"keep": 1, "nested": {"x": 1}, "nulled": 5}))
    now, expires = T0 + timedelta(minutes=1), T0 + timedelta(minutes=61)

    async def merge(i: int) -> bool:
        return await store.merge_state("s", {f"k{i}": i}, f"ch{i % 3}", now, expires)

    assert all(await asyncio.gather(*(merge(i) for i in range(30))))
    assert await store.merge_state("s", {"nested": {"y": 2}, "nulled": None}, None, now, expires)
    loaded = await store.load("s", now=T0)
    assert loaded is not None
    expected = {"keep": 1, "nested": {"y": 2}, "nulled": None, **{f"k{i}": i for i in range(30)}}
    assert loaded.state == expected  # shallow: "nested" replaced, None stored
    assert loaded.channel_activity == {"ch0": now, "ch1": now, "ch2": now}


async def test_a_merge_refreshes_the_session_and_records_its_channel(store: SessionStore) -> None:
    await store.save(make("s", channel_activity={"api": T0}))
    when = T0 + timedelta(minutes=50)
    assert await store.merge_state("s", {"a": 1}, "cli", when, when + 2 * HOUR)
    loaded = await store.load("s", now=when)
    assert loaded is not None
    assert (loaded.last_accessed, loaded.expires_at) == (when, when + 2 * HOUR)
    assert loaded.channel_activity == {"api": T0, "cli": when}
    later = when + timedelta(minutes=30)
    assert await store.merge_state("s", {}, None, later, later + HOUR)  # no channel: none recorded
    loaded = await store.load("s", now=later)
    assert loaded is not None and loaded.channel_activity == {"api": T0, "cli": when}
    assert (loaded.state, loaded.last_accessed, loaded.expires_at) == (
        {"a": 1},
        later,
        later + HOUR,
    )


async def test_expired_sessions_are_invisible_and_never_merged_into(store: SessionStore) -> None:
    await store.save(make("old", state={"v": 1}))
    expiry = T0 + HOUR
    assert await store.load("old", now=expiry - timedelta(microseconds=1)) is not None
    assert await store.load("old", now=expiry) is None
    assert await store.list_active(now=expiry) == []
    assert await store.list_by_user("u", now=expiry) == []
    assert await store.count_active(now=expiry) == 0
    assert not await store.merge_state("old", {"v": 2}, "api", expiry, expiry + HOUR)
    assert not await store.bind_memory_pool("old", "pool", expiry)
    assert not await store.merge_state("missing", {"v": 2}, "api", T0, expiry)
    assert not await store.bind_memory_pool("missing", "pool", T0)
    kept = await store.load("old", now=expiry, include_expired=True)
    assert kept is not None and kept == make("old", state={"v": 1})
    assert [s.session_id for s in await store.list_by_user("u", True, now=expiry)] == ["old"]


async def test_cleanup_deletes_in_batches_with_true_counts(store: SessionStore) -> None:
    for i in range(25):
        await store.save(make(f"old-{i:02}", at=T0 - 2 * HOUR - timedelta(minutes=i)))
    for i in range(5):
        await store.save(make(f"live-{i}"))
    assert [await store.cleanup_expired(10, now=T0) for _ in range(4)] == [10, 10, 5, 0]
    assert sorted(s.session_id for s in await everything(store)) == [f"live-{i}" for i in range(5)]
    assert await store.count_active(now=T0) == 5
    assert await store.cleanup_expired(now=T0 + HOUR) == 5


async def test_lists_are_newest_first_with_stable_ties_and_pages(store: SessionStore) -> None:
    spec = [("a", 3, "alice"), ("b", 1, "bob"), ("c", 3, "alice"), ("d", 2, "bob")]
    spec += [("e", 1, "alice"), ("f", 5, "bob"), ("g", 3, "alice")]
    for sid, minute, user in spec:
        await store.save(make(sid, user, at=T0 + timedelta(minutes=minute)))
    await store.save(make("expired", "alice", at=T0 - 2 * HOUR))
    now = T0 + timedelta(minutes=10)
    order = [sid for sid, *_ in sorted(spec, key=lambda p: (p[1], p[0]), reverse=True)]
    assert [s.session_id for s in await store.list_active(now=now)] == order
    pages = [await store.list_active(3, offset, now=now) for offset in (0, 3, 6)]
    assert [[s.session_id for s in p] for p in pages] == [order[0:3], order[3:6], order[6:]]
    assert await store.list_active(0, now=now) == []
    alice = [sid for sid in order if dict((s, u) for s, _, u in spec)[sid] == "alice"]
    assert [s.session_id for s in await store.list_by_user("alice", now=now)] == alice
    page = await store.list_by_user("alice", True, 2, offset=3, now=now)
    assert [s.session_id for s in page] == [alice[3], "expired"]
    assert await store.list_by_user("carol", now=now) == []


async def test_delete_reports_whether_a_session_went(store: SessionStore) -> None:
    await store.save(make("live"))
    await store.save(make("old", at=T0 - 2 * HOUR))
    assert await store.delete("live") is True
    assert await store.delete("live") is False
    assert await store.delete("old") is True  # expired sessions are deletable too
    assert await everything(store) == []


def _nest(levels: int) -> Any:
    value: Any = [1]
    for _ in range(levels - 1):
        value = {"d": value}
    return value


CORRUPT: list[Callable[[CrossChannelSession], object]] = [
    lambda s: s.state.update(bad=float("nan")),
    lambda s: s.state.update({1: "int key"}),
    lambda s: s.state.update(bad={1, 2}),
    lambda s: s.state.update(deep=_nest(40)),
    lambda s: setattr(s, "user_id", ""),
    lambda s: setattr(s, "expires_at", datetime(2030, 1, 1)),
    lambda s: setattr(s, "created_at", datetime(900, 1, 1, tzinfo=UTC)),
    lambda s: s.channel_activity.update(api="not a time"),
]


@pytest.mark.parametrize("corrupt", CORRUPT)
async def test_bad_sessions_are_refused_and_write_nothing(
    store: SessionStore, corrupt: Callable[[CrossChannelSession], object]
) -> None:
    kept = make("kept", state={"v": 1})
    await store.save(kept)
    for session in (make("new"), make("kept", state={"v": 2})):
        corrupt(session)
        with pytest.raises(SessionValidationError):
            await (store.save if session.session_id == "new" else store.update)(session)
    assert await everything(store) == [kept]


async def test_bad_merges_and_arguments_are_refused_and_write_nothing(store: SessionStore) -> None:
    kept = make("s", state={"v": 1})
    await store.save(kept)
    naive = datetime(2030, 1, 1, 12, 30)
    merges: list[tuple[Any, Any, Any, Any]] = [
        ({"v": float("nan")}, "api", T0, T0 + HOUR),
        ({"v": {1, 2}}, "api", T0, T0 + HOUR),
        ({"v": 2**64}, "api", T0, T0 + HOUR),
        ([("v", 2)], "api", T0, T0 + HOUR),
        ({"deep": _nest(40)}, "api", T0, T0 + HOUR),
        ({"v": 2}, "", T0, T0 + HOUR),
        ({"v": 2}, 7, T0, T0 + HOUR),
        ({"v": 2}, "api", naive, T0 + HOUR),
        ({"v": 2}, "api", T0, naive),
        ({"v": 2}, "api", datetime(900, 1, 1, tzinfo=UTC), T0 + HOUR),
    ]
    for updates, channel, now, expires_at in merges:
        with pytest.raises(SessionValidationError):
            await store.merge_state("s", updates, channel, now, expires_at)
    with pytest.raises(SessionValidationError):
        await store.bind_memory_pool("s", "", T0)
    for call in (
        lambda: store.list_active(-1),
        lambda: store.list_active(10, -1),
        lambda: store.list_by_user("u", limit=-1),
        lambda: store.list_by_user("u", offset=True),  # type: ignore[arg-type]
        lambda: store.cleanup_expired(-1),
        lambda: store.load("s", now=naive),
        lambda: store.count_active(now=naive),
    ):
        with pytest.raises(SessionValidationError):
            await call()
    assert await everything(store) == [kept]


async def test_the_manager_works_the_same_on_every_store(store: SessionStore) -> None:
    clock = T0
    manager = NexusSessionManager(storage_backend=store, clock=lambda: clock)
    other = NexusSessionManager(storage_backend=store, clock=lambda: clock)
    session = await manager.create_session_async(user_id="u", channel="mcp", state={"q": "hi"})
    sid = session.session_id
    assert session.channel_activity == {"mcp": T0} and session.expires_at == T0 + HOUR
    clock = T0 + timedelta(minutes=30)
    assert await other.update_session_state_async(sid, {"a": 1}, "api")
    assert await manager.update_session_state_async(sid, {"b": 2}, "cli")
    loaded = await other.load_session_async(sid)
    assert loaded is not None and loaded.state == {"q": "hi", "a": 1, "b": 2}
    assert loaded.channel_activity == {"mcp": T0, "api": clock, "cli": clock}
    assert loaded.expires_at == clock + HOUR
    clock = T0 + 2 * HOUR
    assert not await manager.update_session_state_async(sid, {"c": 3}, "api")
    assert await other.cleanup_expired_sessions_async() == 1
    assert await everything(store) == []
