"""JSON round trips, atomic shallow merges, and timestamps as aware UTC."""

from __future__ import annotations

import asyncio
import math
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dataflow import DataFlow, ValidationError

DOCS: list[dict[str, Any]] = [
    {},
    {"a": {"b": {"c": [1, [2, [3, {"d": None}]]]}}},
    {"text": "héllo wörld — 日本語 🎉", "ключ": "значение", "quote": "a\"b'c\\d"},
    {
        "floats": [
            0.1,
            -2.5,
            1e-300,
            1.5e-300,
            2.2250738585072014e-308,
            3.141592653589793,
            0.0,
            1.0,
            -0.5e-7,
            12345.678,
        ]
    },
    {"ints": [0, -1, 2**53 + 1, 2**63 - 1, -(2**63)]},
    {"null": None, "list_of_null": [None], "bools": [True, False], "empty": {"x": [], "y": {}}},
    {"key.with.dots": 1, "key with spaces": 2, "$dollar": 3, "": 4, "a/b": 5},
    {"control": "tab\tnew\nline\r\u0001", "nul-free": "\u2028\u2029"},
]


def typed(value: Any) -> Any:
    """``value`` with the type of every scalar spelled out and dict key order dropped.

    ``==`` alone would let ``1.0 == 1`` and ``True == 1`` pass; databases may
    reorder object keys (JSONB does), which is fine.
    """
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, value)


def _doc_model(db: DataFlow) -> type:
    @db.model
    class Doc:
        id: str
        data: dict
        items: list = []  # noqa: RUF012 - a model default, copied per record
        extra: dict | None = None

    return Doc


async def test_json_object_round_trip(db: DataFlow) -> None:
    _doc_model(db)
    for i, doc in enumerate(DOCS):
        await db.insert("Doc", {"id": f"d{i}", "data": doc, "items": [doc, doc]})
    for i, doc in enumerate(DOCS):
        got = await db.get("Doc", f"d{i}")
        assert got is not None
        assert got["data"] == doc
        assert got["items"] == [doc, doc]
        assert got["extra"] is None
        assert typed(got["data"]) == typed(doc)
        assert typed(got["items"]) == typed([doc, doc])


async def test_json_round_trip_through_every_write_path(db: DataFlow) -> None:
    _doc_model(db)
    doc = DOCS[1] | DOCS[3] | DOCS[4]
    await db.insert_many("Doc", [{"id": "m", "data": doc}])
    await db.upsert("Doc", {"id": "u", "data": doc})
    await db.upsert_many("Doc", [{"id": "u2", "data": doc}])
    await db.insert("Doc", {"id": "w", "data": {}})
    await db.update("Doc", "w", {"data": doc})
    await db.insert("Doc", {"id": "v", "data": {}})
    await db.update_where("Doc", {"id": "v"}, {"data": doc})
    rows = await db.select("Doc", order_by="id")
    assert [r["id"] for r in rows] == ["m", "u", "u2", "v", "w"]
    for row in rows:
        assert typed(row["data"]) == typed(doc)


async def test_json_lists_of_scalars(db: DataFlow) -> None:
    _doc_model(db)
    items = ["a", 1, 2.5, True, None, {"k": "v"}, ["n"], "日本"]
    await db.insert("Doc", {"id": "a", "data": {}, "items": items})
    got = await db.get("Doc", "a")
    assert got is not None and typed(got["items"]) == typed(items)


async def test_json_floats_below_1e16_keep_their_type_and_larger_ones_are_refused(
    db: DataFlow,
) -> None:
    # PostgreSQL's JSONB prints 1e16 as 10000000000000000, which would read back as an int:
    # one rule on every database, checked before anything is written.
    _doc_model(db)
    kept = {"n": [9.999999999999998e15, -1.5e15, 1e-300, 2.0, 0.1]}
    await db.insert("Doc", {"id": "a", "data": kept})
    got = await db.get("Doc", "a")
    assert got is not None and typed(got["data"]) == typed(kept)
    for big in (1e16, -1e16, 1e20, 1.7976931348623157e308):
        with pytest.raises(ValidationError, match=r"field 'data'\['n'\]\[0\]: floats"):
            await db.insert("Doc", {"id": "b", "data": {"n": [big]}})
    assert await db.count("Doc") == 1


async def test_negative_zero_is_stored_as_zero_everywhere(db: DataFlow) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"z": -0.0, "l": [-0.0]}})
    got = await db.get("Doc", "a")
    assert got is not None and got["data"] == {"z": 0.0, "l": [0.0]}
    assert math.copysign(1, got["data"]["z"]) == 1 and isinstance(got["data"]["z"], float)


# -- merge -----------------------------------------------------------------


async def _merged(
    db: DataFlow, start: dict[str, Any] | None, updates: dict[str, Any], key: str = "a"
) -> Any:
    await db.insert("Doc", {"id": key, "data": {}, "extra": start})
    assert await db.update_where("Doc", {"id": key}, {}, merge={"extra": updates}) == 1
    got = await db.get("Doc", key)
    assert got is not None
    return got["extra"]


MERGES: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [
    ({"f": 0.1 + 0.2, "big": 2**63 - 1}, {"g": 1 / 3, "h": 1e-300, "i": -(2**63)}),
    ({"a": 1, "b": {"x": 1, "y": 2}}, {"b": {"z": 3}, "c": [1, 2]}),
    ({"a": 1, "b": 2}, {"a": None}),
    ({"keep": True, "n": 0}, {"flag": False, "t": True, "f": 1.5, "i": 2**53 + 1}),
    ({}, {'quo"te': 1, "back\\slash": 2, "dot.ted": 3, "ünï": 4, "日本": 5, "a'b": 6}),
    ({'quo"te': 0, "dot.ted": 0, "x": "keep"}, {'quo"te': 1, "dot.ted": {"n": [None]}}),
    ({"s": "old"}, {"s": "new ' \" \\ ✓", "e": "", "o": {}, "l": []}),
    (None, {"first": 1}),
    ({"$": 1, "[0]": 2}, {"*": 3, "$.a": 4, "a[0]": 5}),
    # MariaDB cannot address keys starting with "-" in a path; control characters need
    # escaping in paths: the merge still gives the same result everywhere.
    ({"-a": 1, "keep": 0}, {"-a": {"n": None}, "-": 2, "tab\tkey": 3, "\x01": 4}),
    ({"-a": [1]}, {"plain": 1, "-b": None}),
]


async def test_merge_is_a_shallow_dict_update(db: DataFlow) -> None:
    _doc_model(db)
    for i, (start, updates) in enumerate(MERGES):
        expected = dict(start or {})
        expected.update(updates)
        got = await _merged(db, start, updates, key=f"m{i}")
        assert typed(got) == typed(expected), (start, updates)


async def test_merge_stores_none_as_json_null(db: DataFlow) -> None:
    _doc_model(db)
    got = await _merged(db, {"a": 1}, {"a": None, "b": None})
    assert got == {"a": None, "b": None}
    assert "a" in got and "b" in got


async def test_merge_touches_only_matching_rows_and_counts_them(db: DataFlow) -> None:
    _doc_model(db)
    for i in range(4):
        await db.insert("Doc", {"id": f"d{i}", "data": {"n": i, "tag": "even" if i % 2 else "odd"}})
    n = await db.update_where("Doc", {"id": {"$in": ["d1", "d3"]}}, {}, merge={"data": {"hit": 1}})
    assert n == 2
    rows = {r["id"]: r["data"] for r in await db.select("Doc")}
    assert rows["d1"] == {"n": 1, "tag": "even", "hit": 1}
    assert rows["d3"] == {"n": 3, "tag": "even", "hit": 1}
    assert rows["d0"] == {"n": 0, "tag": "odd"}
    # Merging a value a row already holds still counts that row.
    again = await db.update_where("Doc", {"id": "d1"}, {}, merge={"data": {"hit": 1}})
    assert again == 1


@pytest.mark.parametrize("prefix", ["k", "-"])  # "-": merged row by row on MySQL
async def test_concurrent_merges_into_one_record_lose_nothing(db: DataFlow, prefix: str) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"start": 0}})

    async def merge(i: int) -> int:
        return await db.update_where("Doc", {"id": "a"}, {}, merge={"data": {f"{prefix}{i}": i}})

    assert await asyncio.gather(*(merge(i) for i in range(20))) == [1] * 20
    got = await db.get("Doc", "a")
    assert got is not None
    assert got["data"] == {"start": 0, **{f"{prefix}{i}": i for i in range(20)}}


async def test_merge_together_with_plain_values(db: DataFlow) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"k": 1}, "items": [1]})
    n = await db.update_where("Doc", {"id": "a"}, {"items": [2]}, merge={"data": {"j": 2}})
    assert n == 1
    got = await db.get("Doc", "a")
    assert got is not None and got["data"] == {"k": 1, "j": 2} and got["items"] == [2]


async def test_empty_merge_changes_nothing_but_counts(db: DataFlow) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"k": 1}})
    assert await db.update_where("Doc", {"id": "a"}, {}, merge={"data": {}}) == 1
    got = await db.get("Doc", "a")
    assert got is not None and got["data"] == {"k": 1}


BAD_MERGES: list[dict[str, Any]] = [
    {"items": {"a": 1}},  # a list field
    {"id": {"a": 1}},  # not a JSON field
    {"nope": {"a": 1}},
    {"data": ["a"]},
    {"data": {1: "int key"}},
    {"data": {"a": {1, 2}}},
    {"data": {"a": float("nan")}},
]


async def test_bad_merges_raise_validation_error_and_write_nothing(db: DataFlow) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"k": 1}})
    before = await db.get("Doc", "a")
    for merge in BAD_MERGES:
        with pytest.raises(ValidationError):
            await db.update_where("Doc", {"id": "a"}, {}, merge=merge)
    assert await db.get("Doc", "a") == before


async def test_merge_of_a_field_also_set_is_refused(db: DataFlow) -> None:
    _doc_model(db)
    await db.insert("Doc", {"id": "a", "data": {"k": 1}})
    with pytest.raises(ValidationError, match="data"):
        await db.update_where("Doc", {"id": "a"}, {"data": {}}, merge={"data": {"x": 1}})


# -- timestamps ------------------------------------------------------------


def _event_model(db: DataFlow) -> type:
    @db.model
    class Event:
        id: str
        at: datetime
        maybe: datetime | None = None

    return Event


def _assert_utc(value: Any) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)


async def test_managed_timestamps_are_aware_utc_with_microseconds(db: DataFlow) -> None:
    _event_model(db)
    before = datetime.now(UTC)
    created = await db.insert("Event", {"id": "a", "at": before})
    after = datetime.now(UTC)
    stored = await db.get("Event", "a")
    assert stored is not None
    for field in ("created_at", "updated_at"):
        _assert_utc(created[field])
        _assert_utc(stored[field])
        assert stored[field] == created[field]  # the returned value is exactly what was stored
        assert before <= stored[field] <= after
    # Updates move updated_at only; several writes inside one second stay ordered.
    updated = await db.update("Event", "a", {"maybe": after})
    assert updated is not None
    assert updated["created_at"] == stored["created_at"]
    assert updated["updated_at"] >= stored["updated_at"]
    _assert_utc(updated["updated_at"])


async def test_microseconds_survive_on_managed_timestamps(db: DataFlow) -> None:
    _event_model(db)
    at = datetime(2024, 5, 6, 7, 8, 9, 1, tzinfo=UTC)
    rows = [await db.insert("Event", {"id": f"e{i}", "at": at}) for i in range(20)]
    stored = {r["id"]: r for r in await db.select("Event")}
    micros = {r["created_at"].microsecond for r in rows}
    assert len(micros) > 1 or all(m != 0 for m in micros)  # not truncated to whole seconds
    for row in rows:
        assert stored[row["id"]]["created_at"] == row["created_at"]


DATETIMES = [
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2099, 12, 31, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 6, 1, 12, 30, 0, 500, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2024, 6, 1, 1, 0, 0, 42, tzinfo=timezone(timedelta(hours=-8))),
]


async def test_user_datetime_round_trips_as_equal_aware_utc(db: DataFlow) -> None:
    _event_model(db)
    for i, value in enumerate(DATETIMES):
        key = f"e{i}"
        returned = await db.insert("Event", {"id": key, "at": value, "maybe": value})
        stored = await db.get("Event", key)
        assert stored is not None
        for got in (returned["at"], stored["at"], stored["maybe"]):
            assert got == value
            _assert_utc(got)
            assert got.microsecond == value.astimezone(UTC).microsecond
        # The same instant spelled in another zone finds it; a microsecond apart does not.
        for probe in (value, value.astimezone(UTC)):
            assert [r["id"] for r in await db.select("Event", {"at": probe})] == [key]
        assert await db.count("Event", {"at": value + timedelta(microseconds=1)}) == 0
        in_range = {
            "$gt": value - timedelta(microseconds=1),
            "$lt": value + timedelta(microseconds=1),
        }
        assert await db.count("Event", {"at": in_range}) == 1


async def test_datetimes_order_by_instant_across_zones(db: DataFlow) -> None:
    _event_model(db)
    base = datetime(2024, 1, 1, 12, tzinfo=UTC)
    # Written in different zones: the wall-clock text would sort them differently.
    values = {
        "a": base.astimezone(timezone(timedelta(hours=10))),
        "b": (base + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-10))),
        "c": (base + timedelta(hours=2)).astimezone(timezone(timedelta(hours=3))),
    }
    for key, value in values.items():
        await db.insert("Event", {"id": key, "at": value})
    assert [r["id"] for r in await db.select("Event", order_by="-at")] == ["c", "b", "a"]
    cut = base + timedelta(minutes=30)
    assert [r["id"] for r in await db.select("Event", {"at": {"$gt": cut}}, order_by="at")] == [
        "b",
        "c",
    ]


async def test_naive_datetimes_are_rejected_and_nothing_written(db: DataFlow) -> None:
    _event_model(db)
    naive = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(ValidationError, match="timezone"):
        await db.insert("Event", {"id": "a", "at": naive})
    with pytest.raises(ValidationError, match="timezone"):
        await db.insert("Event", {"id": "b", "at": datetime.now(UTC), "maybe": naive})
    assert await db.count("Event") == 0
    await db.insert("Event", {"id": "c", "at": datetime.now(UTC)})
    with pytest.raises(ValidationError):
        await db.update("Event", "c", {"at": naive})
    with pytest.raises(ValidationError):
        await db.update_where("Event", {}, {"maybe": naive})
    got = await db.get("Event", "c")
    assert got is not None and got["maybe"] is None


async def test_sqlite_reads_timestamps_written_by_other_tools_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "foreign.db"
    async with DataFlow(f"sqlite:///{path}") as db:

        @db.model
        class Stamp:
            id: str
            at: datetime

        await db.insert(Stamp, {"id": "ours", "at": datetime(2026, 1, 1, tzinfo=UTC)})
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE stamp SET id = 'naive', at = '2026-01-01 10:00:00'")
            conn.execute(
                "INSERT INTO stamp SELECT 'offset', '2026-01-01T12:00:00+02:00', "
                "created_at, updated_at FROM stamp"
            )
        conn.close()
        naive, offset = await db.get(Stamp, "naive"), await db.get(Stamp, "offset")
        assert naive is not None and offset is not None
        assert naive["at"] == offset["at"] == datetime(2026, 1, 1, 10, tzinfo=UTC)
        assert naive["at"].tzinfo is UTC and offset["at"].tzinfo is UTC
