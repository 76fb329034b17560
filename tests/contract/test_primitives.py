"""The dialect primitives every target must provide identically: upsert, atomic JSON
merge, limited delete, ordering, error classification, transactions, schema set-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from dataflow import (
    DataFlow,
    DuplicateKeyError,
    Index,
    TransactionAbortedError,
    ValidationError,
)


def _item(db: DataFlow) -> type:
    @db.model(indexes=[Index("rank"), Index("tags", membership=True)])
    class Item:
        id: str
        rank: int | None = None
        data: dict = {}  # noqa: RUF012 - a DataFlow default
        tags: list = []  # noqa: RUF012
        at: datetime | None = None

    return Item


async def test_upsert_inserts_then_replaces_keeping_created_at(db: DataFlow) -> None:
    _item(db)
    first = await db.upsert("Item", {"id": "a", "rank": 1})
    again = await db.upsert("Item", {"id": "a", "rank": 2, "tags": ["x"]})
    assert again["rank"] == 2 and again["tags"] == ["x"]
    assert again["created_at"] == first["created_at"] and again["updated_at"] >= first["updated_at"]
    assert await db.upsert_many("Item", [{"id": "a", "rank": 3}, {"id": "b"}]) == 2
    assert [r["id"] for r in await db.select("Item", {"tags": {"$contains": "x"}})] == []
    assert await db.count("Item") == 2


async def test_merge_is_atomic_and_shallow(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "a", "data": {"keep": {"n": 1}, "-dash": 0}})

    async def merge(i: int) -> int:
        return await db.update_where("Item", {"id": "a"}, {}, merge={"data": {f"k{i}": i}})

    assert await asyncio.gather(*(merge(i) for i in range(10))) == [1] * 10
    await db.update_where("Item", {"id": "a"}, {}, merge={"data": {"keep": None, "-dash": [1]}})
    got = await db.get("Item", "a")
    assert got is not None
    assert got["data"] == {"keep": None, "-dash": [1], **{f"k{i}": i for i in range(10)}}


async def test_limited_delete_counts_what_it_deleted(db: DataFlow) -> None:
    _item(db)
    await db.insert_many("Item", [{"id": f"i{n:02d}", "rank": n % 2} for n in range(25)])
    deleted = []
    while batch := await db.delete_where("Item", {"rank": 0}, limit=5):
        deleted.append(batch)
    assert deleted == [5, 5, 3] and await db.count("Item") == 12


async def test_ordering_puts_nulls_last_ascending_and_breaks_ties_by_id(db: DataFlow) -> None:
    _item(db)
    rows = [{"id": "c", "rank": 1}, {"id": "a", "rank": None}, {"id": "b", "rank": 1}]
    await db.insert_many("Item", [*rows, {"id": "d", "rank": 0}])
    assert [r["id"] for r in await db.select("Item", order_by="rank")] == ["d", "b", "c", "a"]
    assert [r["id"] for r in await db.select("Item", order_by="-rank")] == ["a", "c", "b", "d"]
    pages = [await db.select("Item", order_by="rank", limit=2, offset=o) for o in (0, 2)]
    assert [r["id"] for page in pages for r in page] == ["d", "b", "c", "a"]


async def test_errors_are_classified_alike(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "a"})
    with pytest.raises(DuplicateKeyError):
        await db.insert("Item", {"id": "a"})
    with pytest.raises(ValidationError):
        await db.insert("Item", {"id": "b", "rank": 2**64})
    assert await db.count("Item") == 1


async def test_a_failed_operation_aborts_its_transaction(db: DataFlow) -> None:
    _item(db)
    await db.insert("Item", {"id": "taken"})
    with pytest.raises(TransactionAbortedError):
        async with db.transaction() as tx:
            await tx.insert("Item", {"id": "new"})
            with pytest.raises(DuplicateKeyError):
                await tx.insert("Item", {"id": "taken"})
    async with db.transaction() as tx:
        with pytest.raises(DuplicateKeyError):
            async with tx.savepoint():
                await tx.insert("Item", {"id": "taken"})
        await tx.insert("Item", {"id": "kept"})
    assert sorted(r["id"] for r in await db.select("Item")) == ["kept", "taken"]


async def test_timestamps_are_aware_utc(db: DataFlow) -> None:
    _item(db)
    when = datetime(2026, 6, 1, 12, 0, tzinfo=UTC) + timedelta(microseconds=123456)
    await db.insert("Item", {"id": "a", "at": when})
    got = await db.get("Item", "a")
    assert got is not None and got["at"] == when and got["at"].tzinfo is UTC


async def test_schema_set_up_by_several_handles_at_once(db_url: str) -> None:
    handles = [DataFlow(db_url) for _ in range(4)]
    try:
        for handle in handles:
            _item(handle)
        await asyncio.gather(*(h.initialize() for h in handles))
        await asyncio.gather(*(h.insert("Item", {"id": f"h{i}"}) for i, h in enumerate(handles)))
        assert await handles[0].count("Item") == 4
    finally:
        for handle in handles:
            await handle.close()
