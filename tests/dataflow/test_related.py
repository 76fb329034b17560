"""get_with: a record and its related records, in one round trip on the servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dataflow import DataFlow, DriverCall, Related, ValidationError

T0 = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _models(db: DataFlow) -> None:
    @db.model
    class Order:
        id: str
        customer: str

    @db.model
    class Line:
        id: str
        order_id: str
        seq: int
        price: float
        paid: bool
        at: datetime
        note: str | None = None
        extra: dict | None = None


async def _seed(db: DataFlow) -> None:
    _models(db)
    await db.insert("Order", {"id": "o1", "customer": "ana"})
    await db.insert("Order", {"id": "o2", "customer": "bo"})
    lines = [
        {
            "id": f"l{i}",
            "order_id": "o1",
            "seq": 3 - i,
            "price": [15.0, 0.1, 1e300][i],
            "paid": i % 2 == 0,
            "at": T0 + timedelta(hours=i),
            "note": None if i == 1 else f"n{i}",
            "extra": {"k": [1, "x", None], "f": 2.5} if i == 0 else None,
        }
        for i in range(3)
    ]
    await db.insert_many("Line", lines)


async def test_a_record_with_its_related_records(db: DataFlow) -> None:
    await _seed(db)
    expected = await db.select("Line", {"order_id": "o1"}, order_by="seq")
    got = await db.get_with(
        "Order",
        "o1",
        lines=Related("Line", {"order_id": "o1"}, order_by="seq"),
        last=Related("Line", {"order_id": "o1"}, order_by="-seq", limit=1),
        none=Related("Line", {"order_id": "o2"}),
    )
    assert got is not None
    assert (got["id"], got["customer"]) == ("o1", "ana")
    assert got["lines"] == expected  # the same values and types as a select
    assert [type(v) for v in got["lines"][0].values()] == [type(v) for v in expected[0].values()]
    assert got["lines"][0]["at"].tzinfo is not None
    assert got["last"] == [expected[-1]]
    assert got["none"] == []
    assert await db.get_with("Order", "nope", lines=Related("Line", {"order_id": "nope"})) is None
    assert await db.get_with("Order", "o2") == await db.get("Order", "o2")


async def test_one_round_trip_on_the_servers(db: DataFlow) -> None:
    await _seed(db)
    calls: list[DriverCall] = []
    db.on_driver_call(calls.append)
    await db.get_with(
        "Order",
        "o1",
        lines=Related("Line", {"order_id": "o1"}, order_by="seq"),
        last=Related("Line", {"order_id": "o1"}, order_by="-seq", limit=1),
    )
    assert len(calls) == (3 if db.dialect.name == "sqlite" else 1)


async def test_bad_related_specs_are_refused(db: DataFlow) -> None:
    await _seed(db)
    with pytest.raises(ValidationError, match="Related"):
        await db.get_with("Order", "o1", lines=("Line", {}))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="hide field"):
        await db.get_with("Order", "o1", customer=Related("Line", {}))
    with pytest.raises(ValidationError):
        await db.get_with("Order", "o1", lines=Related("Line", {}, limit=-1))
    with pytest.raises(ValidationError):
        await db.get_with("Order", "o1", lines=Related("Line", {"nope": 1}))
