"""Input no database can store, or that some would change, is refused the same way on
all three, before the database sees it: a ValidationError naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dataflow import DataFlow, ValidationError
from dataflow.jsonvalues import MAX_JSON_DEPTH


def _doc(db: DataFlow) -> type:
    @db.model(indexes=[])
    class Doc:
        id: str
        title: str = ""
        n: int = 0
        x: float = 0.0
        at: datetime | None = None
        data: dict = {}  # noqa: RUF012 - a DataFlow default
        tags: list = []  # noqa: RUF012

    return Doc


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


BAD_RECORDS = [
    ({"id": "nul\x00id"}, "'id' contains a NUL"),
    ({"id": "lone \ud800"}, "'id' contains a lone surrogate"),
    ({"id": "x" * 256}, "'id' is indexed and takes at most 255"),
    ({"id": "a", "title": "nul\x00"}, "'title' contains a NUL"),
    ({"id": "a", "n": 2**63}, "'n' takes 64-bit integers"),
    ({"id": "a", "n": -(2**70)}, "'n' takes 64-bit integers"),
    ({"id": "a", "x": float("inf")}, "'x' does not accept"),
    ({"id": "a", "x": 10**400}, "'x' does not accept"),
    ({"id": "a", "at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, "'at' takes"),
    ({"id": "a", "at": datetime(999, 12, 31, tzinfo=UTC)}, "'at' takes datetimes from year 1000"),
    ({"id": "a", "data": {"deep": _nested(10_000)}}, "nested more than 31 levels"),
    ({"id": "a", "data": {"deep": _nested(MAX_JSON_DEPTH)}}, "nested more than 31 levels"),
    ({"id": "a", "data": {"k": "\ud800"}}, "field 'data'['k']: text contains a lone surrogate"),
    ({"id": "a", "data": {"k\x00": 1}}, "is not valid text"),
    ({"id": "a", "data": {"big": 2**64}}, "'data'['big']: integers must fit in 64 bits"),
    ({"id": "a", "data": {"f": 1e16}}, "floats must be smaller than 1e16"),
    ({"id": "a", "data": {"f": float("nan")}}, "is not valid JSON"),
    ({"id": "a", "data": {"t": (1, 2)}}, "tuple is not JSON"),
    ({"id": "a", "data": {1: "int key"}}, "key 1 is not valid text"),
    ({"id": "a", "tags": [{"s": {1, 2}}]}, "'tags'[0]['s']: set is not JSON"),
]


@pytest.mark.parametrize(("record", "message"), BAD_RECORDS)
async def test_bad_values_are_refused_identically_and_nothing_is_written(
    db: DataFlow, record: dict[str, Any], message: str
) -> None:
    _doc(db)
    for write in (
        lambda: db.insert("Doc", record),
        lambda: db.upsert("Doc", record),
        lambda: db.insert_many("Doc", [{"id": "ok"}, record]),
    ):
        with pytest.raises(ValidationError) as info:
            await write()
        assert message in str(info.value)
        assert len(str(info.value)) < 400  # short, even for huge values
    assert await db.count("Doc") == 0


async def test_the_deepest_accepted_json_round_trips(db: DataFlow) -> None:
    _doc(db)
    deepest = {"deep": _nested(MAX_JSON_DEPTH - 1)}  # the dict and 30 lists: 31 levels
    await db.insert("Doc", {"id": "a", "data": deepest})
    assert (await db.get("Doc", "a") or {})["data"] == deepest


async def test_bad_updates_and_merges_write_nothing(db: DataFlow) -> None:
    _doc(db)
    await db.insert("Doc", {"id": "a", "data": {"keep": 1}})
    for values, merge in (
        ({"title": "\x00"}, None),
        ({}, {"data": {"deep": _nested(10_000)}}),
        ({}, {"data": {"z": 2**64}}),
        ({}, {"data": {"s": "\udfff"}}),
        ({}, "not a dict"),
    ):
        with pytest.raises(ValidationError):
            await db.update_where("Doc", {"id": "a"}, values, merge=merge)  # type: ignore[arg-type]
    got = await db.get("Doc", "a")
    assert got is not None and got["data"] == {"keep": 1} and got["title"] == ""


@pytest.mark.parametrize(
    "order_by",
    [5, [("id", "asc", "x")], [(["id"], "asc")], [("id", 1)], ["nope"], [None], {"id": 1}],
)
async def test_bad_order_by_is_a_validation_error(db: DataFlow, order_by: Any) -> None:
    _doc(db)
    with pytest.raises(ValidationError, match="order"):
        await db.select("Doc", order_by=order_by)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limit": 2**70}, "limit must be a non-negative 64-bit int"),
        ({"offset": 2**64}, "offset must be a non-negative 64-bit int"),
        ({"filter": {"n": 2**70}}, "64-bit integers"),
        ({"filter": {"n": {"$in": [1, 2**64]}}}, "64-bit integers"),
        ({"filter": {"title": "\x00"}}, "NUL"),
        ({"filter": {("deep",) * 3: 1}}, "unknown field"),
        ({"filter": {"at": {"$lt": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}}}, "at"),
    ],
)
async def test_bad_filters_and_pages(db: DataFlow, kwargs: dict[str, Any], message: str) -> None:
    _doc(db)
    with pytest.raises(ValidationError, match=message):
        await db.select("Doc", **kwargs)


async def test_unhashable_or_foreign_names_are_validation_errors(db: DataFlow) -> None:
    _doc(db)
    with pytest.raises(ValidationError):
        await db.get({}, "a")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        db.node([])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await db.get("Doc", ["a"])  # type: ignore[arg-type]
