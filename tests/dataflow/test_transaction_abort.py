"""A failed operation aborts its transaction on every database; savepoints undo only
themselves. Never "no error, data gone"."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from dataflow import (
    DataFlow,
    DataFlowError,
    DuplicateKeyError,
    TransactionAbortedError,
    ValidationError,
)


def _item(db: DataFlow) -> type:
    @db.model
    class Item:
        id: str
        n: int = 0

    return Item


async def _ids(db: DataFlow) -> list[str]:
    return [r["id"] for r in await db.select("Item", order_by="id")]


async def test_a_caught_failure_aborts_the_transaction_and_leaving_says_so(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    with pytest.raises(TransactionAbortedError) as info:
        async with db.transaction() as tx:
            await tx.insert("Item", {"id": "a"})
            with pytest.raises(DuplicateKeyError):
                await tx.insert("Item", {"id": "taken"})
            # The caller caught it and carries on: every later operation is refused.
            with pytest.raises(TransactionAbortedError, match="DuplicateKeyError"):
                await tx.insert("Item", {"id": "b"})
            with pytest.raises(TransactionAbortedError):
                await tx.get("Item", "a")
    assert isinstance(info.value.__cause__, DuplicateKeyError)
    # Nothing of it was committed, on every database alike.
    assert await _ids(db) == ["taken"]
    # And the handle works normally afterwards.
    async with db.transaction() as tx:
        await tx.insert("Item", {"id": "c"})
    assert await _ids(db) == ["c", "taken"]


async def test_a_validation_error_before_the_database_does_not_abort(db: DataFlow) -> None:
    _item(db)
    async with db.transaction() as tx:
        await tx.insert("Item", {"id": "a"})
        with pytest.raises(ValidationError):
            await tx.insert("Item", {"id": "b", "n": "not a number"})
        await tx.insert("Item", {"id": "c"})
    assert await _ids(db) == ["a", "c"]


async def test_a_savepoint_undoes_only_its_own_operations(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    async with db.transaction() as tx:
        await tx.insert("Item", {"id": "a"})
        with pytest.raises(DuplicateKeyError):
            async with tx.savepoint():
                await tx.insert("Item", {"id": "b"})
                await tx.insert("Item", {"id": "taken"})
        async with tx.savepoint():
            await tx.update("Item", "a", {"n": 2})
        await tx.insert("Item", {"id": "c"})
    assert await _ids(db) == ["a", "c", "taken"]
    assert (await db.get("Item", "a") or {})["n"] == 2


async def test_an_error_raised_in_a_savepoint_by_the_caller_undoes_it(db: DataFlow) -> None:
    _item(db)
    async with db.transaction() as tx:
        await tx.insert("Item", {"id": "a"})
        with pytest.raises(KeyError):
            async with tx.savepoint():
                await tx.insert("Item", {"id": "b"})
                raise KeyError("caller's own")
    assert await _ids(db) == ["a"]


async def test_a_failure_swallowed_inside_a_savepoint_is_reported_when_it_ends(
    db: DataFlow,
) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    async with db.transaction() as tx:
        with pytest.raises(TransactionAbortedError, match="undone"):
            async with tx.savepoint():
                await tx.insert("Item", {"id": "b"})
                with pytest.raises(DuplicateKeyError):
                    await tx.insert("Item", {"id": "taken"})
        await tx.insert("Item", {"id": "c"})  # the transaction itself is fine
    assert await _ids(db) == ["c", "taken"]


async def test_nested_savepoints(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    async with db.transaction() as tx, tx.savepoint():
        await tx.insert("Item", {"id": "outer"})
        with pytest.raises(DuplicateKeyError):
            async with tx.savepoint():
                await tx.insert("Item", {"id": "inner"})
                await tx.insert("Item", {"id": "taken"})
        await tx.insert("Item", {"id": "after"})
    assert await _ids(db) == ["after", "outer", "taken"]


async def test_no_savepoint_in_an_aborted_transaction(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    with pytest.raises(TransactionAbortedError):
        async with db.transaction() as tx:
            with pytest.raises(DuplicateKeyError):
                await tx.insert("Item", {"id": "taken"})
            async with tx.savepoint():
                pass  # pragma: no cover - refused on entry


async def test_a_transaction_is_unusable_after_its_block(db: DataFlow) -> None:
    _item(db)
    async with db.transaction() as tx:
        await tx.insert("Item", {"id": "a"})
    with pytest.raises(DataFlowError, match="only inside its block"):
        await tx.insert("Item", {"id": "b"})
    assert await _ids(db) == ["a"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_postgresql_commit_answered_with_rollback_is_an_error(db: DataFlow) -> None:
    # A statement that failed behind the transaction's back (here: straight on its
    # connection): PostgreSQL answers COMMIT with ROLLBACK, which must not pass for success.
    _item(db)
    with pytest.raises(TransactionAbortedError, match="COMMIT"):
        async with db.transaction() as tx:
            await tx.insert("Item", {"id": "a"})
            with pytest.raises(ValidationError):
                await tx._conn.fetch("SELECT 1 / 0", [])
    assert await _ids(db) == []


# SQLite runs each statement to its end without yielding to the loop: operations of
# one transaction cannot overlap there. On the network databases they could.
NETWORK = pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)


@NETWORK
async def test_a_transaction_runs_one_operation_at_a_time(db: DataFlow) -> None:
    _item(db)
    with pytest.raises(DataFlowError, match="one operation at a time"):
        async with db.transaction() as tx:
            await asyncio.gather(tx.insert("Item", {"id": "a"}), tx.insert("Item", {"id": "b"}))
    await asyncio.sleep(0.05)  # the operation gather left running ends, on its own
    assert await _ids(db) == []  # nothing committed, and the handle goes on
    await db.insert("Item", {"id": "c"})
    assert await _ids(db) == ["c"]


@NETWORK
async def test_leaving_a_transaction_with_an_operation_still_running(db: DataFlow) -> None:
    _item(db)
    started: list[asyncio.Task[object]] = []
    with pytest.raises(DataFlowError, match="still running"):
        async with db.transaction() as tx:
            started.append(asyncio.create_task(tx.insert("Item", {"id": "late"})))
            await asyncio.sleep(0)  # it starts, and the block ends under it
    with contextlib.suppress(DataFlowError):
        await started[0]
    assert await _ids(db) == []
    await db.insert("Item", {"id": "ok"})
    assert await _ids(db) == ["ok"]
