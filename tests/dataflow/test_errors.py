"""Bad input raises our errors, and nothing is written."""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Awaitable
from datetime import UTC, date, datetime
from typing import Any

import pytest

from dataflow import DataFlow, DataFlowError, ValidationError


def _thing(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str
        name: str
        n: int = 0
        x: float = 0.0
        ok: bool = False
        at: datetime | None = None
        meta: dict = {}  # noqa: RUF012 - a model default, copied per record
        tags: list = []  # noqa: RUF012

    return Thing


BAD_VALUES: list[tuple[str, Any]] = [
    ("id", 1),
    ("id", None),
    ("name", 5),
    ("name", b"bytes"),
    ("name", None),
    ("n", "1"),
    ("n", 1.0),
    ("n", True),
    ("n", decimal.Decimal(1)),
    ("n", 2**63),  # beyond a 64-bit column
    ("n", -(2**63) - 1),
    ("x", "1.5"),
    ("x", float("nan")),
    ("x", float("inf")),
    ("x", -float("inf")),
    ("x", False),
    ("ok", 1),
    ("ok", "true"),
    ("at", "2024-01-01T00:00:00+00:00"),
    ("at", date(2024, 1, 1)),
    ("at", datetime(2024, 1, 1)),  # naive
    ("meta", [1]),
    ("meta", "{}"),
    ("meta", {"k": float("nan")}),
    ("meta", {"k": {1, 2}}),
    ("meta", {"k": object()}),
    ("meta", {"k": datetime.now(UTC)}),
    ("meta", {"k": uuid.uuid4()}),
    ("meta", {"k": b"x"}),
    ("meta", {"k": [float("inf")]}),
    ("tags", {"a": 1}),
    ("tags", ("a", "b")),
    ("tags", "abc"),
]


async def test_bad_values_on_insert_raise_validation_error_and_write_nothing(
    db: DataFlow,
) -> None:
    _thing(db)
    accepted = []
    for field, value in BAD_VALUES:
        record = {"id": "a", "name": "n", field: value}
        try:
            await db.insert("Thing", record)
        except ValidationError:
            pass
        else:
            accepted.append((field, value))
            await db.delete("Thing", "a")
    assert accepted == []
    assert await db.count("Thing") == 0


def _bad_writes(db: DataFlow, field: str, value: Any) -> list[Awaitable[Any]]:
    return [
        db.insert_many("Thing", [{"id": "b", "name": "b"}, {"id": "c", "name": "c", field: value}]),
        db.upsert("Thing", {"id": "keep", "name": "k", field: value}),
        db.upsert_many(
            "Thing", [{"id": "d", "name": "d"}, {"id": "keep", "name": "k", field: value}]
        ),
        db.update("Thing", "keep", {field: value}),
        db.update_where("Thing", {}, {field: value}),
        db.nodes["ThingUpdateNode"].execute(id="keep", fields={field: value}),
        db.nodes["ThingBulkUpdateNode"].execute(filter={}, fields={field: value}),
    ]


async def test_bad_values_on_every_write_path_write_nothing(db: DataFlow) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "keep", "name": "k"})
    before = await db.get("Thing", "keep")
    accepted = []
    for field, value in BAD_VALUES:
        if field == "id":
            continue
        for i, call in enumerate(_bad_writes(db, field, value)):
            try:
                await call
            except ValidationError:
                pass
            else:
                accepted.append((i, field, value))
    assert accepted == []
    assert await db.count("Thing") == 1
    assert await db.get("Thing", "keep") == before


REFUSED_RECORDS: list[dict[str, Any]] = [
    {"id": "a", "name": "n", "ghost": 1},
    {"id": "a", "name": "n", "updated_at": datetime.now(UTC)},
    {"id": "a"},  # a required field missing
    {"name": "n"},  # no id
]


async def test_unknown_managed_or_missing_fields_are_refused(db: DataFlow) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "keep", "name": "k"})
    for record in REFUSED_RECORDS:
        with pytest.raises(ValidationError):
            await db.insert("Thing", record)
        with pytest.raises(ValidationError):
            await db.nodes["ThingCreateNode"].execute(**record)
        with pytest.raises(ValidationError):
            await db.insert_many("Thing", [record])
    assert await db.count("Thing") == 1


async def test_an_insert_may_set_created_at_but_not_updated_at(db: DataFlow) -> None:
    _thing(db)
    then = datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    stored = await db.insert("Thing", {"id": "old", "name": "n", "created_at": then})
    assert stored["created_at"] == then and stored["updated_at"] > then
    got = await db.get("Thing", "old")
    assert got is not None and got["created_at"] == then
    with pytest.raises(ValidationError, match="created_at"):
        await db.insert("Thing", {"id": "bad", "name": "n", "created_at": "yesterday"})
    assert await db.count("Thing") == 1


async def test_updates_of_unknown_or_managed_fields_are_refused(db: DataFlow) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "keep", "name": "k"})
    before = await db.get("Thing", "keep")
    for field in ("ghost", "created_at", "updated_at", "id"):
        value: Any = datetime.now(UTC) if field.endswith("_at") else "v"
        with pytest.raises(ValidationError, match=field):
            await db.update("Thing", "keep", {field: value})
        with pytest.raises(ValidationError, match=field):
            await db.update_where("Thing", {}, {field: value})
    assert await db.get("Thing", "keep") == before


async def test_bad_limit_and_offset(db: DataFlow) -> None:
    _thing(db)
    await db.insert("Thing", {"id": "keep", "name": "k"})
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": -1}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": True}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": None}, "offset"),
    ]
    for kwargs, named in cases:
        with pytest.raises(ValidationError, match=named):
            await db.select("Thing", **kwargs)
        with pytest.raises(ValidationError, match=named):
            await db.nodes["ThingListNode"].execute(**kwargs)
    with pytest.raises(ValidationError, match="limit"):
        await db.delete_where("Thing", {}, limit=-1)
    assert await db.count("Thing") == 1


async def test_non_dict_records_and_filters(db: DataFlow) -> None:
    _thing(db)
    for bad in (["id", "a"], "a", None, 1):
        with pytest.raises(ValidationError):
            await db.insert("Thing", bad)  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await db.insert_many("Thing", [bad])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        await db.update_where("Thing", None, {"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await db.delete_where("Thing", None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await db.nodes["ThingBulkDeleteNode"].execute()
    with pytest.raises(ValidationError):
        await db.get("Thing", 5)  # type: ignore[arg-type]
    assert await db.count("Thing") == 0


async def test_our_errors_share_one_root(db: DataFlow) -> None:
    _thing(db)
    with pytest.raises(DataFlowError):
        await db.insert("Thing", {"id": "a"})
    with pytest.raises(ValueError):  # ValidationError is also a ValueError
        await db.insert("Thing", {"id": "a"})


async def test_strings_with_nul_and_lone_surrogates(db: DataFlow) -> None:
    # Text the databases cannot store must fail as our error, never half-written.
    _thing(db)
    for text in ("nul\x00inside", "lone \ud800 surrogate"):
        try:
            await db.insert("Thing", {"id": "a", "name": text})
        except DataFlowError:
            assert await db.count("Thing") == 0
        else:
            got = await db.get("Thing", "a")
            assert got is not None and got["name"] == text
            await db.delete("Thing", "a")
