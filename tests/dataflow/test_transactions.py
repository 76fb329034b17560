"""Transactions and the atomic write primitives (conditional and versioned updates)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dataflow import (
    ConcurrencyError,
    DataFlow,
    DataFlowError,
    DuplicateKeyError,
    NotFoundError,
    ValidationError,
)


def _account(db: DataFlow) -> type:
    @db.model
    class Account:
        id: str
        balance: int
        owner: str = "x"

    return Account


async def test_transaction_commits_on_success(db: DataFlow) -> None:
    _account(db)
    async with db.transaction() as tx:
        await tx.insert("Account", {"id": "a", "balance": 10})
        await tx.insert("Account", {"id": "b", "balance": 20})
        assert await tx.update("Account", "a", {"balance": 5}) is not None
        # Reads inside see the transaction's own writes.
        got = await tx.get("Account", "a")
        assert got is not None and got["balance"] == 5
        assert await tx.count("Account") == 2
    rows = await db.select("Account", order_by="id")
    assert [(r["id"], r["balance"]) for r in rows] == [("a", 5), ("b", 20)]


async def test_transaction_rolls_back_on_exception(db: DataFlow) -> None:
    _account(db)
    await db.insert("Account", {"id": "keep", "balance": 1})
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as tx:
            await tx.insert("Account", {"id": "a", "balance": 10})
            await tx.update("Account", "keep", {"balance": 99})
            await tx.delete_where("Account", {"id": "keep"})
            raise RuntimeError("boom")
    rows = await db.select("Account")
    assert [(r["id"], r["balance"]) for r in rows] == [("keep", 1)]
    # The connection is clean afterwards: new work commits normally.
    async with db.transaction() as tx:
        await tx.insert("Account", {"id": "b", "balance": 2})
    assert await db.count("Account") == 2


async def test_duplicate_key_inside_a_transaction_is_our_error_and_rolls_back(
    db: DataFlow,
) -> None:
    _account(db)
    await db.insert("Account", {"id": "taken", "balance": 1})
    with pytest.raises(DuplicateKeyError) as info:
        async with db.transaction() as tx:
            await tx.insert("Account", {"id": "new", "balance": 2})
            await tx.insert("Account", {"id": "taken", "balance": 3})
    assert info.value.__cause__ is not None  # the driver error stays inspectable
    assert [r["id"] for r in await db.select("Account")] == ["taken"]


async def test_validation_error_inside_a_transaction_rolls_back(db: DataFlow) -> None:
    _account(db)
    with pytest.raises(ValidationError):
        async with db.transaction() as tx:
            await tx.insert("Account", {"id": "a", "balance": 1})
            await tx.insert("Account", {"id": "b", "balance": "lots"})
    assert await db.count("Account") == 0


async def test_bulk_writes_inside_a_transaction(db: DataFlow) -> None:
    _account(db)
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as tx:
            recs = [{"id": str(i), "balance": i} for i in range(10)]
            assert await tx.insert_many("Account", recs) == 10
            assert await tx.update_where("Account", {"balance": {"$lt": 5}}, {"owner": "y"}) == 5
            assert await tx.upsert_many("Account", [{"id": "0", "balance": 100}]) == 1
            1 / 0  # noqa: B018 - fail after the writes
    assert await db.count("Account") == 0


async def test_concurrent_transactions_on_one_handle(db: DataFlow) -> None:
    _account(db)
    await db.insert("Account", {"id": "a", "balance": 0})

    async def deposit(i: int) -> None:
        async with db.transaction() as tx:
            await tx.insert("Account", {"id": f"t{i}", "balance": i})

    await asyncio.gather(*(deposit(i) for i in range(8)))
    assert await db.count("Account") == 9


async def test_update_where_reports_rows_matched(db: DataFlow) -> None:
    _account(db)
    await db.insert_many("Account", [{"id": str(i), "balance": i % 3} for i in range(9)])
    # Rows already holding the value count too (MySQL reports found rows, not changed ones).
    assert await db.update_where("Account", {"balance": 0}, {"balance": 0}) == 3
    assert await db.update_where("Account", {"balance": 1}, {"owner": "one"}) == 3
    assert await db.update_where("Account", {"balance": 7}, {"owner": "none"}) == 0
    assert await db.count("Account", {"owner": "one"}) == 3
    # A conditional transition succeeds once: the second caller sees 0 rows.
    assert await db.update_where("Account", {"id": "0", "owner": "x"}, {"owner": "won"}) == 1
    assert await db.update_where("Account", {"id": "0", "owner": "x"}, {"owner": "won"}) == 0


async def test_conditional_update_lets_exactly_one_concurrent_caller_win(db: DataFlow) -> None:
    _account(db)
    await db.insert("Account", {"id": "a", "balance": 0, "owner": "nobody"})

    async def claim(who: str) -> int:
        return await db.update_where("Account", {"id": "a", "owner": "nobody"}, {"owner": who})

    results = await asyncio.gather(*(claim(f"w{i}") for i in range(10)))
    assert sorted(results) == [0] * 9 + [1]
    got = await db.get("Account", "a")
    assert got is not None and got["owner"] == f"w{results.index(1)}"


async def test_delete_where_with_limit(db: DataFlow) -> None:
    _account(db)
    await db.insert_many("Account", [{"id": f"r{i}", "balance": 1} for i in range(5)])
    assert await db.delete_where("Account", {"balance": 1}, limit=2) == 2
    assert await db.count("Account") == 3
    assert await db.delete_where("Account", {"balance": 1}, limit=10) == 3
    with pytest.raises(ValidationError, match="limit"):
        await db.delete_where("Account", {}, limit=-1)


# -- versioned updates -----------------------------------------------------


def _doc(db: DataFlow) -> type:
    @db.model(versioned=True)
    class Doc:
        id: str
        body: str

    return Doc


async def test_update_versioned_returns_the_new_version(db: DataFlow) -> None:
    _doc(db)
    created = await db.insert("Doc", {"id": "a", "body": "v1"})
    assert created["version"] == 1
    assert await db.update_versioned("Doc", "a", 1, {"body": "v2"}) == 2
    assert await db.update_versioned("Doc", "a", 2, {"body": "v3"}) == 3
    got = await db.get("Doc", "a")
    assert got is not None and (got["body"], got["version"]) == ("v3", 3)


async def test_update_versioned_with_a_stale_version_raises_concurrency_error(
    db: DataFlow,
) -> None:
    _doc(db)
    await db.insert("Doc", {"id": "a", "body": "v1"})
    await db.update_versioned("Doc", "a", 1, {"body": "v2"})
    with pytest.raises(ConcurrencyError):
        await db.update_versioned("Doc", "a", 1, {"body": "lost update"})
    got = await db.get("Doc", "a")
    assert got is not None and (got["body"], got["version"]) == ("v2", 2)


async def test_update_versioned_of_a_missing_record_raises_not_found(db: DataFlow) -> None:
    _doc(db)
    with pytest.raises(NotFoundError):
        await db.update_versioned("Doc", "missing", 1, {"body": "x"})
    assert await db.count("Doc") == 0


async def test_concurrent_versioned_updates_have_one_winner(db: DataFlow) -> None:
    _doc(db)
    await db.insert("Doc", {"id": "a", "body": "v1"})

    async def write(i: int) -> str:
        try:
            await db.update_versioned("Doc", "a", 1, {"body": f"w{i}"})
        except ConcurrencyError:
            return "lost"
        return f"w{i}"

    results = await asyncio.gather(*(write(i) for i in range(8)))
    winners = [r for r in results if r != "lost"]
    assert len(winners) == 1
    got = await db.get("Doc", "a")
    assert got is not None and (got["body"], got["version"]) == (winners[0], 2)


async def test_version_is_managed(db: DataFlow) -> None:
    _doc(db)
    with pytest.raises(ValidationError, match="version"):
        await db.insert("Doc", {"id": "a", "body": "x", "version": 7})
    await db.insert("Doc", {"id": "b", "body": "x"})
    with pytest.raises(ValidationError, match="version"):
        await db.update("Doc", "b", {"version": 9})
    with pytest.raises(ValidationError, match="version"):
        await db.update_versioned("Doc", "b", -1, {"body": "y"})
    got = await db.get("Doc", "b")
    assert got is not None and got["version"] == 1
    assert await db.count("Doc") == 1


async def test_update_versioned_needs_a_versioned_model(db: DataFlow) -> None:
    _account(db)
    await db.insert("Account", {"id": "a", "balance": 1})
    with pytest.raises(ValidationError, match="versioned"):
        await db.update_versioned("Account", "a", 1, {"balance": 2})


async def test_failed_writes_leave_no_membership_rows(db: DataFlow) -> None:
    from dataflow import Index

    @db.model(indexes=[Index("tags", membership=True)])
    class Card:
        id: str
        tags: list

    await db.insert(Card, {"id": "taken", "tags": ["old"]})
    with pytest.raises(DuplicateKeyError):
        await db.insert_many(Card, [{"id": "new", "tags": ["ghost"]}, {"id": "taken", "tags": []}])
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.insert(Card, {"id": "tx", "tags": ["ghost"]})
            await tx.update(Card, "taken", {"tags": ["ghost"]})
            raise RuntimeError("roll back")
    assert await db.select(Card, {"tags": {"$contains": "ghost"}}) == []
    assert [r["id"] for r in await db.select(Card, {"tags": {"$contains": "old"}})] == ["taken"]
    assert await db.count(Card) == 1


async def test_concurrent_first_use_and_same_id_races(db: DataFlow) -> None:
    _account(db)

    # Many tasks using a model for the first time at once: one schema set-up, all succeed.
    await asyncio.gather(*(db.insert("Account", {"id": f"f{i}", "balance": i}) for i in range(20)))
    assert await db.count("Account") == 20

    async def create(i: int) -> str:
        try:
            await db.insert("Account", {"id": "same", "balance": i})
        except DuplicateKeyError:
            return "duplicate"
        return "created"

    results = await asyncio.gather(*(create(i) for i in range(10)))
    assert sorted(results) == ["created"] + ["duplicate"] * 9

    upserts = [db.upsert("Account", {"id": "up", "balance": i}) for i in range(10)]
    await asyncio.gather(*upserts)
    assert await db.count("Account", {"id": "up"}) == 1


async def test_using_db_inside_its_own_sqlite_transaction_raises_instead_of_hanging(
    tmp_path: Path,
) -> None:
    db = DataFlow(f"sqlite:///{tmp_path / 'tx.db'}")

    @db.model
    class Box:
        id: str

    try:
        async with db.transaction() as tx:
            await tx.insert(Box, {"id": "a"})
            with pytest.raises(DataFlowError, match="use tx"):
                await db.get(Box, "a")
        assert await db.get(Box, "a") is not None
    finally:
        await db.close()
