"""SessionStorage on every database: the spec's eight methods and the atomic primitives."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import pytest

from dataflow import ConfigurationError, DataFlow, DuplicateKeyError, ValidationError
from kaizen.integrations.nexus import (
    CrossChannelSession,
    SessionNotFoundError,
    SessionStorage,
    SessionValidationError,
)
from kaizen.integrations.nexus._checks import MAX_DEPTH
from kaizen.integrations.nexus.storage import TABLE

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
MODEL = "CrossChannelSessionRecord"


def make(user: str = "u", at: datetime = T0, minutes: int = 60, **kw: Any) -> CrossChannelSession:
    """A session created (and last used) at ``at`` with a TTL of ``minutes``."""
    return CrossChannelSession(user_id=user, created_at=at, ttl=timedelta(minutes=minutes), **kw)


def full_session() -> CrossChannelSession:
    return make(
        session_id="s-full",
        state={"text": "héllo", "n": 3, "f": 0.1, "none": None, "nested": {"l": [1, True]}},
        channel_activity={"api": T0, "cli": T0 + timedelta(microseconds=7)},
        memory_pool_id="pool-1",
    )


async def test_save_and_load_round_trip_exactly(storage: SessionStorage) -> None:
    session = full_session()
    assert await storage.save(session) == "s-full"
    loaded = await storage.load("s-full", now=T0)
    assert loaded == session
    assert loaded is not None and loaded.channel_activity["cli"].tzinfo is UTC


async def test_table_has_the_spec_columns_with_real_types(
    db: DataFlow, storage: SessionStorage
) -> None:
    await storage.save(full_session())
    [row] = await db.select(MODEL, {})
    spec = {"id", "user_id", "last_accessed", "expires_at", "state_json"}
    spec |= {"channel_activity_json", "memory_pool_id", "created_at", "updated_at"}
    assert spec <= set(row)
    assert isinstance(row["last_accessed"], datetime) and isinstance(row["expires_at"], datetime)
    assert isinstance(row["state_json"], dict) and isinstance(row["channel_activity_json"], dict)
    assert row["ttl_seconds"] == 3600


async def test_indexes_cover_expiry_user_and_last_access(
    db_url: str, storage: SessionStorage
) -> None:
    await storage.count_active()  # creates the table
    indexes = await index_columns(db_url, TABLE)
    assert ("expires_at",) in indexes
    assert ("user_id", "last_accessed") in indexes
    assert ("last_accessed",) in indexes


async def test_save_refuses_a_duplicate_id(storage: SessionStorage) -> None:
    await storage.save(make(session_id="dup", state={"v": 1}))
    with pytest.raises(DuplicateKeyError):
        await storage.save(make(session_id="dup", state={"v": 2}))
    loaded = await storage.load("dup", now=T0)
    assert loaded is not None and loaded.state == {"v": 1}


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.state.update(bad=float("nan")),
        lambda s: s.state.update({1: "int key"}),
        lambda s: s.state.update(bad={1, 2}),
        lambda s: setattr(s, "user_id", ""),
        lambda s: setattr(s, "expires_at", datetime(2030, 1, 1)),
        lambda s: s.channel_activity.update(api="not a time"),
    ],
)
async def test_save_and_update_of_bad_data_write_nothing(
    storage: SessionStorage, corrupt: Any
) -> None:
    stored = make(session_id="kept", state={"v": 1})
    await storage.save(stored)
    for session in (make(session_id="new"), make(session_id="kept", state={"v": 2})):
        corrupt(session)
        with pytest.raises(SessionValidationError):
            await (storage.save if session.session_id == "new" else storage.update)(session)
    assert await storage.load("new", now=T0) is None
    assert await storage.load("kept", now=T0) == stored


async def test_update_overwrites_and_requires_a_stored_session(storage: SessionStorage) -> None:
    session = make(session_id="s1", state={"a": 1})
    await storage.save(session)
    session.update_state({"b": 2}, "mcp", now=T0 + timedelta(minutes=1))
    session.memory_pool_id = "pool-9"
    await storage.update(session)
    assert await storage.load("s1", now=T0) == session
    with pytest.raises(SessionNotFoundError):
        await storage.update(make(session_id="missing"))
    assert await storage.load("missing", now=T0) is None


async def test_load_hides_expired_and_missing_sessions(storage: SessionStorage) -> None:
    await storage.save(make(session_id="s1", minutes=60))
    assert await storage.load("s1", now=T0 + timedelta(minutes=59)) is not None
    assert await storage.load("s1", now=T0 + timedelta(minutes=60)) is None
    assert await storage.load("nope", now=T0) is None


async def test_delete_reports_whether_a_row_went(storage: SessionStorage) -> None:
    await storage.save(make(session_id="live"))
    await storage.save(make(session_id="old", at=T0 - timedelta(days=1)))
    assert await storage.delete("live") is True
    assert await storage.delete("live") is False
    assert await storage.delete("old") is True  # expired sessions are deletable too
    assert await storage.count_active(now=T0 - timedelta(days=2)) == 0


async def seed_ordering(storage: SessionStorage) -> list[str]:
    """Store sessions with distinct and tied access times; return ids in expected order."""
    spec = [("a", 3), ("b", 1), ("c", 3), ("d", 2), ("e", 1), ("f", 5), ("g", 3)]
    for sid, minute in spec:
        await storage.save(make(session_id=sid, at=T0 + timedelta(minutes=minute)))
    await storage.save(make(session_id="expired", at=T0 - timedelta(hours=2)))
    # Most recently accessed first; ties broken by id, descending.
    return [sid for sid, minute in sorted(spec, key=lambda p: (p[1], p[0]), reverse=True)]


async def test_list_active_orders_newest_first_with_stable_ties(storage: SessionStorage) -> None:
    expected = await seed_ordering(storage)
    now = T0 + timedelta(minutes=10)
    assert [s.session_id for s in await storage.list_active(now=now)] == expected
    pages = [await storage.list_active(3, offset, now=now) for offset in (0, 3, 6, 9)]
    assert [[s.session_id for s in p] for p in pages] == [
        expected[0:3],
        expected[3:6],
        expected[6:],
        [],
    ]
    assert await storage.list_active(0, now=now) == []


async def test_negative_limits_and_offsets_are_refused(storage: SessionStorage) -> None:
    for call in (
        storage.list_active(-1),
        storage.list_active(10, -1),
        storage.list_by_user("u", limit=-1),
        storage.cleanup_expired(-1),
    ):
        with pytest.raises(ValidationError):
            await call


async def test_list_by_user_filters_orders_and_pages(storage: SessionStorage) -> None:
    for minute, user in ((1, "alice"), (4, "bob"), (2, "alice"), (3, "alice")):
        await storage.save(
            make(user, session_id=f"{user}-{minute}", at=T0 + timedelta(minutes=minute))
        )
    await storage.save(make("alice", session_id="alice-old", at=T0 - timedelta(hours=3)))
    now = T0 + timedelta(minutes=5)
    ids = [s.session_id for s in await storage.list_by_user("alice", now=now)]
    assert ids == ["alice-3", "alice-2", "alice-1"]
    everything = await storage.list_by_user("alice", include_expired=True, now=now)
    assert [s.session_id for s in everything] == [*ids, "alice-old"]
    assert [s.session_id for s in await storage.list_by_user("alice", limit=2, now=now)] == ids[:2]
    page = await storage.list_by_user("alice", True, 2, offset=2, now=now)
    assert [s.session_id for s in page] == ["alice-1", "alice-old"]
    assert await storage.list_by_user("carol", now=now) == []


async def test_count_active_ignores_expired(storage: SessionStorage) -> None:
    assert await storage.count_active(now=T0) == 0
    for i in range(3):
        await storage.save(make(session_id=f"live-{i}"))
    await storage.save(make(session_id="old", at=T0 - timedelta(hours=1)))
    assert await storage.count_active(now=T0) == 3
    assert await storage.count_active(now=T0 + timedelta(hours=1)) == 0


async def test_cleanup_deletes_in_batches_with_true_counts(storage: SessionStorage) -> None:
    for i in range(25):
        await storage.save(make(session_id=f"old-{i:02}", at=T0 - timedelta(hours=2, minutes=i)))
    for i in range(5):
        await storage.save(make(session_id=f"live-{i}"))
    counts = [await storage.cleanup_expired(10, now=T0) for _ in range(4)]
    assert counts == [10, 10, 5, 0]
    remaining = await storage.list_by_user("u", include_expired=True, now=T0)
    assert sorted(s.session_id for s in remaining) == [f"live-{i}" for i in range(5)]
    assert await storage.cleanup_expired(now=T0 + timedelta(hours=1)) == 5


async def test_merge_state_is_atomic_per_key(storage: SessionStorage) -> None:
    await storage.save(make(session_id="s", state={"keep": 1, "nested": {"x": 1}}))
    now, expires = T0 + timedelta(minutes=1), T0 + timedelta(minutes=61)

    async def merge(i: int) -> bool:
        return await storage.merge_state("s", {f"k{i}": i}, f"ch{i % 3}", now, expires)

    assert all(await asyncio.gather(*(merge(i) for i in range(60))))
    loaded = await storage.load("s", now=T0)
    assert loaded is not None
    assert loaded.state == {"keep": 1, "nested": {"x": 1}, **{f"k{i}": i for i in range(60)}}
    assert loaded.channel_activity == {"ch0": now, "ch1": now, "ch2": now}
    assert (loaded.last_accessed, loaded.expires_at) == (now, expires)


async def test_merge_state_has_dict_update_semantics(storage: SessionStorage) -> None:
    await storage.save(make(session_id="s", state={"a": 1, "nested": {"x": 1}, "gone?": 5}))
    odd_keys = {'quote"d': 1, "back\\slash": 2, "dot.ted": 3, "$.path": 4, "ünï": "✓", "": 0}
    updates = {"nested": {"y": [1, {"z": None}]}, "gone?": None, "b": False, **odd_keys}
    assert await storage.merge_state("s", updates, None, T0, T0 + timedelta(hours=1))
    loaded = await storage.load("s", now=T0)
    assert loaded is not None
    assert loaded.state == {"a": 1, **updates}
    assert loaded.channel_activity == {}


VALUES: dict[str, Any] = {
    "f": 0.1,
    "small": 1e-7,
    "subnormal": 5e-324,
    "below_limit": 9.999e15,
    "integral_float": 1234567890123456.0,
    "max_int": 2**63 - 1,
    "min_int": -(2**63),
    "past_2_53": 2**53 + 1,
    "text": "emoji 😀, tab\t, newline\n, \x01, \u2028, quotes \"'\\",
    "bools": [True, False, None],
}


@pytest.mark.parametrize("via", ["save", "merge"])
async def test_json_values_round_trip_identically(storage: SessionStorage, via: str) -> None:
    await storage.save(make(session_id="s", state=VALUES if via == "save" else {}))
    if via == "merge":
        assert await storage.merge_state("s", VALUES, None, T0, T0 + timedelta(hours=1))
    loaded = await storage.load("s", now=T0)
    assert loaded is not None
    assert loaded.state == VALUES
    assert {k: type(v) for k, v in loaded.state.items()} == {k: type(v) for k, v in VALUES.items()}


async def test_merge_keeps_every_digit_of_a_float(storage: SessionStorage) -> None:
    await storage.save(make(session_id="s"))
    assert await storage.merge_state("s", {"x": 123456789.12345679}, None, T0, T0)
    [stored] = await storage.list_by_user("u", include_expired=True, now=T0)
    assert stored.state["x"] == 123456789.12345679


async def test_the_deepest_accepted_state_works_everywhere(storage: SessionStorage) -> None:
    def nest(levels: int) -> Any:
        value: Any = [1]
        for _ in range(levels - 1):
            value = {"d": value}
        return value

    await storage.save(make(session_id="s", state={"x": nest(MAX_DEPTH - 1)}))
    assert await storage.merge_state("s", {"y": nest(MAX_DEPTH - 1)}, "api", T0, T0)
    loaded = await storage.list_by_user("u", include_expired=True, now=T0)
    assert [s.state for s in loaded] == [{"x": nest(MAX_DEPTH - 1), "y": nest(MAX_DEPTH - 1)}]
    with pytest.raises(SessionValidationError, match="nested"):
        await storage.merge_state("s", {"z": nest(MAX_DEPTH)}, "api", T0, T0)


async def test_merge_state_skips_expired_missing_and_bad_input(storage: SessionStorage) -> None:
    await storage.save(make(session_id="old", at=T0 - timedelta(hours=1), state={"v": 1}))
    later = T0 + timedelta(hours=1)
    assert not await storage.merge_state("old", {"v": 2}, "api", T0, later)
    assert not await storage.merge_state("missing", {"v": 2}, "api", T0, later)
    bad: list[tuple[Any, str]] = [({"v": float("nan")}, "api"), ({"v": 2}, ""), ([1], "api")]
    for updates, channel in bad:
        with pytest.raises(SessionValidationError):
            await storage.merge_state("old", updates, channel, T0 - timedelta(days=1), later)
    stored = await storage.list_by_user("u", include_expired=True, now=T0)
    assert [(s.state, s.channel_activity, s.expires_at) for s in stored] == [({"v": 1}, {}, T0)]


async def test_bind_memory_pool_only_binds_live_sessions(storage: SessionStorage) -> None:
    await storage.save(make(session_id="s"))
    assert await storage.bind_memory_pool("s", "pool-1", T0)
    assert not await storage.bind_memory_pool("s", "pool-2", T0 + timedelta(hours=1))
    assert not await storage.bind_memory_pool("missing", "pool-2", T0)
    with pytest.raises(SessionValidationError):
        await storage.bind_memory_pool("s", "", T0)
    loaded = await storage.load("s", now=T0)
    assert loaded is not None and loaded.memory_pool_id == "pool-1"


async def test_storages_share_one_model_per_dataflow(db: DataFlow) -> None:
    first, second = SessionStorage(db), SessionStorage(db)
    await first.save(make(session_id="shared"))
    assert await second.load("shared", now=T0) is not None


async def test_a_foreign_model_with_the_same_name_is_refused(db: DataFlow) -> None:
    class CrossChannelSessionRecord:  # a different model under the storage's model name
        id: str

    db.model(table="something_else")(CrossChannelSessionRecord)
    with pytest.raises(ConfigurationError):
        SessionStorage(db)


async def index_columns(db_url: str, table: str) -> set[tuple[str, ...]]:
    """Column tuples of the indexes on ``table``, read from the database's catalog."""
    url = urlparse(db_url)
    if url.scheme == "sqlite":
        return _sqlite_indexes(url.path, table)
    if url.scheme == "postgresql":
        return await _postgres_indexes(db_url, table)
    return await _mysql_indexes(url, table)


def _sqlite_indexes(path: str, table: str) -> set[tuple[str, ...]]:
    with sqlite3.connect(path) as conn:
        names = [r[1] for r in conn.execute(f"PRAGMA index_list('{table}')")]
        return {tuple(r[2] for r in conn.execute(f"PRAGMA index_info('{n}')")) for n in names}


async def _postgres_indexes(db_url: str, table: str) -> set[tuple[str, ...]]:
    import asyncpg

    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT array_agg(a.attname ORDER BY k.ord) AS cols FROM pg_index i "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indrelid = $1::regclass GROUP BY i.indexrelid",
            table,
        )
    finally:
        await conn.close()
    return {tuple(r["cols"]) for r in rows}


async def _mysql_indexes(url: Any, table: str) -> set[tuple[str, ...]]:
    import asyncmy

    conn = await asyncmy.connect(
        host=url.hostname,
        port=url.port,
        user=url.username,
        password=url.password or "",
        database=url.path.lstrip("/"),
    )
    try:
        cur: Any = conn.cursor()
        await cur.execute(
            "SELECT index_name, column_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() AND table_name = %s "
            "ORDER BY index_name, seq_in_index",
            (table,),
        )
        found: dict[str, list[str]] = {}
        for name, column in await cur.fetchall():
            found.setdefault(name, []).append(column)
        await cur.close()
    finally:
        conn.close()
    return {tuple(cols) for cols in found.values()}


async def test_expired_sessions_can_be_listed_and_loaded_on_request(
    storage: SessionStorage,
) -> None:
    await storage.save(make(session_id="old", minutes=1))
    await storage.save(make(session_id="new", at=T0 + timedelta(minutes=5)))
    later = T0 + timedelta(minutes=10)
    assert [s.session_id for s in await storage.list_active(now=later)] == ["new"]
    everything = await storage.list_active(now=later, include_expired=True)
    assert [s.session_id for s in everything] == ["new", "old"]
    assert await storage.load("old", now=later) is None
    expired = await storage.load("old", now=later, include_expired=True)
    assert expired is not None and expired.is_expired(later)
