"""Statement and pool time limits, and the wait that could never end (a ``db`` call
inside a transaction with every connection taken)."""

from __future__ import annotations

import asyncio
import time

import pytest
from df_support import RawDB, dialect_of

from dataflow import DataFlow, DataFlowError, TimeoutError

NETWORK = pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)


def _item(db: DataFlow) -> type:
    @db.model
    class Item:
        id: str
        n: int = 0

    return Item


def _with(url: str, **options: object) -> DataFlow:
    return DataFlow(url, **options)


@NETWORK
async def test_a_statement_stuck_on_a_lock_ends_at_command_timeout(db_url: str) -> None:
    async with _with(db_url) as setup:
        _item(setup)
        await setup.insert("Item", {"id": "a"})
    raw = await RawDB(db_url).open()
    db = _with(db_url, command_timeout=0.5)
    _item(db)
    try:
        await db.get("Item", "a")  # connect and check the table first
        await raw.execute("BEGIN")
        mark = "$1" if raw.dialect == "postgresql" else "%s"
        await raw.execute(f"UPDATE item SET n = 1 WHERE id = {mark}", "a")  # holds the row lock
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await db.update_where("Item", {"id": "a"}, {"n": 2})
        assert time.monotonic() - started < 0.5 + 1
        assert info.value.what == "statement" and "command_timeout" in str(info.value)
        await raw.execute("ROLLBACK")
        # The timed-out connection was dropped; the handle goes on with a fresh one.
        assert await db.update_where("Item", {"id": "a"}, {"n": 3}) == 1
        assert (await db.get("Item", "a") or {})["n"] == 3
    finally:
        await db.close()
        await raw.close()


async def test_a_long_statement_ends_at_command_timeout(db_url: str) -> None:
    endless = {
        "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT count(*) FROM c",
        "postgresql": "SELECT pg_sleep(30)",
        "mysql": "SELECT SLEEP(30)",
    }[dialect_of(db_url)]
    async with _with(db_url, command_timeout=0.3) as db:
        backend = await db._backend()
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="command_timeout"):
            await backend.run(lambda conn: conn.fetch(endless, []), atomic=False)
        assert time.monotonic() - started < 0.3 + 1
        await db.ping()  # and the next statement runs


async def test_waiting_for_a_connection_ends_at_pool_timeout(db_url: str) -> None:
    db = _with(db_url, pool_size=1, pool_timeout=0.3)
    _item(db)
    release = asyncio.Event()
    try:
        await db.initialize()

        async def hold() -> None:
            async with db.transaction() as tx:
                await tx.insert("Item", {"id": "held"})
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await db.get("Item", "held")
        assert time.monotonic() - started < 0.3 + 1
        assert info.value.what == "acquire" and "pool_timeout" in str(info.value)
        release.set()
        await holder
        assert await db.get("Item", "held") is not None
    finally:
        await db.close()


async def test_db_inside_its_own_transaction_with_the_pool_full_fails_at_once(
    db_url: str,
) -> None:
    db = _with(db_url, pool_size=1, pool_timeout=60)
    _item(db)
    try:
        with pytest.raises(DataFlowError, match="use tx, not db"):
            async with db.transaction() as tx:
                await tx.insert("Item", {"id": "a"})
                await db.get("Item", "a")  # would wait for ever for its own connection
        assert await db.count("Item") == 0
    finally:
        await db.close()


@NETWORK
async def test_transactions_waiting_on_each_other_through_the_pool(db_url: str) -> None:
    # Two tasks in transactions, each wanting a second connection from a pool of two:
    # the one that would complete the deadlock is refused; the other one finishes.
    db = _with(db_url, pool_size=2, pool_timeout=60)
    _item(db)
    await db.initialize()
    both_in = asyncio.Barrier(2)

    async def misuse(name: str) -> str:
        async with db.transaction() as tx:
            await tx.insert("Item", {"id": name})
            await both_in.wait()
            await db.count("Item")
        return name

    try:
        results = await asyncio.gather(misuse("a"), misuse("b"), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and "use tx, not db" in str(errors[0])
        assert await db.count("Item") == 1  # the other one committed
    finally:
        await db.close()
