"""Dropped connections: reads recover, writes fail clearly and are never duplicated.

An admin connection (the ``raw`` fixture) terminates DataFlow's pooled
connections from the server side: ``pg_terminate_backend`` on PostgreSQL,
``KILL`` on MariaDB/MySQL.
"""

from __future__ import annotations

import asyncio

import pytest
from df_support import RawDB

from dataflow import ConnectionLostError, DataFlow

BOTH = pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


async def _others(raw: RawDB) -> list[int]:
    """Server ids of every connection to the test database but the admin's own."""
    if raw.dialect == "postgresql":
        sql = (
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    else:
        sql = (
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
    return [int(r[0]) for r in await raw.fetch(sql)]


async def _kill_pooled(raw: RawDB) -> int:
    """Terminate DataFlow's connections and wait until the server has dropped them."""
    victims = await _others(raw)
    assert victims, "DataFlow holds no pooled connection to kill"
    for victim in victims:
        if raw.dialect == "postgresql":
            await raw.execute("SELECT pg_terminate_backend($1)", victim)
        else:
            await raw.execute(f"KILL {victim}")
    for _ in range(250):
        if not set(victims) & set(await _others(raw)):
            return len(victims)
        await asyncio.sleep(0.02)
    raise AssertionError(f"connections {victims} survived being killed")


def _thing(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str
        n: int = 0

    return Thing


@BOTH
async def test_the_next_read_after_a_killed_connection_succeeds(db: DataFlow, raw: RawDB) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "a", "n": 1})
    assert await db.get("Thing", "a") is not None
    reads = [
        (lambda: db.get("Thing", "a"), lambda r: r["n"] == 1),
        (lambda: db.select("Thing", {"n": 1}), lambda r: [x["id"] for x in r] == ["a"]),
        (lambda: db.count("Thing"), lambda r: r == 1),
        (lambda: db.nodes["ThingReadNode"].execute(id="a"), lambda r: r["id"] == "a"),
        (lambda: db.nodes["ThingListNode"].execute(limit=5), lambda r: len(r) == 1),
    ]
    for read, check in reads:
        await _kill_pooled(raw)
        assert check(await read())
    # And the pool is healthy afterwards: writes work again.
    await db.insert("Thing", {"id": "b"})
    assert await db.count("Thing") == 2


@BOTH
async def test_a_write_on_a_killed_connection_raises_and_is_not_duplicated(
    db: DataFlow, raw: RawDB
) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "a", "n": 1})
    await _kill_pooled(raw)
    with pytest.raises(ConnectionLostError):
        await db.insert("Thing", {"id": "b", "n": 2})
    # Never retried behind the caller's back: the row is not there (and not twice).
    assert await db.count("Thing", {"id": "b"}) == 0
    # The caller may retry once it knows; that works on a fresh connection.
    await db.insert("Thing", {"id": "b", "n": 2})
    assert await db.count("Thing", {"id": "b"}) == 1


@BOTH
async def test_every_kind_of_write_on_a_killed_connection(db: DataFlow, raw: RawDB) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "a", "n": 1})
    writes = [
        lambda: db.update("Thing", "a", {"n": 100}),
        lambda: db.update_where("Thing", {"id": "a"}, {"n": 100}),
        lambda: db.insert_many("Thing", [{"id": "x"}, {"id": "y"}]),
        lambda: db.upsert("Thing", {"id": "a", "n": 100}),
        lambda: db.delete("Thing", "a"),
        lambda: db.nodes["ThingBulkCreateNode"].execute(records=[{"id": "z"}]),
    ]
    for write in writes:
        await _kill_pooled(raw)
        with pytest.raises(ConnectionLostError):
            await write()
        rows = await db.select("Thing")
        assert [(r["id"], r["n"]) for r in rows] == [("a", 1)]


@BOTH
async def test_a_transaction_on_a_killed_connection(db: DataFlow, raw: RawDB) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "a", "n": 1})
    await _kill_pooled(raw)
    with pytest.raises(ConnectionLostError):
        async with db.transaction() as tx:
            await tx.insert("Thing", {"id": "b"})
            await tx.update("Thing", "a", {"n": 2})
    rows = await db.select("Thing")
    assert [(r["id"], r["n"]) for r in rows] == [("a", 1)]
    async with db.transaction() as tx:
        await tx.insert("Thing", {"id": "b"})
    assert await db.count("Thing") == 2


@BOTH
async def test_several_pooled_connections_killed_at_once(db: DataFlow, raw: RawDB) -> None:
    _thing(db)
    await db.insert_many("Thing", [{"id": str(i), "n": i} for i in range(20)])
    # Open several connections by running reads concurrently.
    await asyncio.gather(*(db.get("Thing", str(i)) for i in range(20)))
    killed = await _kill_pooled(raw)
    assert killed >= 1
    results = await asyncio.gather(*(db.get("Thing", str(i)) for i in range(20)))
    assert [r["n"] for r in results if r is not None] == list(range(20))


@POSTGRESQL
async def test_the_pool_recovers_once_the_database_accepts_connections_again(
    db: DataFlow, raw: RawDB, db_url: str
) -> None:
    # PostgreSQL can refuse new connections to one database: "the server is down" for us.
    import asyncpg

    _thing(db)
    await db.insert("Thing", {"id": "a"})
    name = await raw.scalar("SELECT current_database()")
    admin = await asyncpg.connect(db_url.rsplit("/", 1)[0] + "/postgres", timeout=5)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            await _kill_pooled(raw)
            with pytest.raises(ConnectionLostError):
                await db.count("Thing")
            with pytest.raises(ConnectionLostError):
                await db.insert("Thing", {"id": "b"})
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()
    assert await db.count("Thing") == 1
    await db.insert("Thing", {"id": "b"})
    assert await db.count("Thing") == 2
