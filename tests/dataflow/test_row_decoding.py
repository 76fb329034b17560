"""Reads through each model's compiled row decoder: every kind converted, JSON text parsed
whatever its spacing, ``updated_at`` sharing ``created_at``'s value only while equal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from df_support import RawDB

from dataflow import DataFlow
from dataflow.values import load_json


def _thing_model(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str
        name: str
        count: int
        ratio: float
        flag: bool
        data: dict
        items: list
        when: datetime | None = None
        extra: dict | None = None

    return Thing


def _placeholder(raw: RawDB) -> str:
    return {"sqlite": "?", "postgresql": "$1", "mysql": "%s"}[raw.dialect]


async def test_every_kind_decodes_to_its_python_type(db: DataFlow) -> None:
    _thing_model(db)
    when = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    values: dict[str, Any] = {
        "name": "n",
        "count": -3,
        "ratio": 2.5,
        "data": {"a": [1, {"b": None}]},
        "items": ["x", 2],
    }
    await db.insert("Thing", {"id": "t1", "flag": True, "when": when, **values})
    await db.insert("Thing", {"id": "t2", "flag": False, **values})
    t1, t2 = await db.select("Thing", order_by="id")
    assert list(t1) == [
        "id",
        "name",
        "count",
        "ratio",
        "flag",
        "data",
        "items",
        "when",
        "extra",
        "created_at",
        "updated_at",
    ]
    assert {k: t1[k] for k in values} == values
    assert t1["flag"] is True and t2["flag"] is False
    assert type(t1["count"]) is int and type(t1["ratio"]) is float
    assert t1["when"] == when and t1["when"].utcoffset() == timedelta(0)
    assert t2["when"] is None and t1["extra"] is None and t2["extra"] is None
    assert await db.get("Thing", "t1") == t1


async def test_updated_at_is_its_own_value_once_the_record_changes(db: DataFlow) -> None:
    _thing_model(db)
    base = {"name": "n", "count": 1, "ratio": 0.5, "flag": False, "data": {}, "items": []}
    await db.insert("Thing", {"id": "t", **base})
    [fresh] = await db.select("Thing")
    assert fresh["updated_at"] == fresh["created_at"]
    assert fresh["created_at"].tzinfo is not None
    assert fresh["created_at"].utcoffset() == timedelta(0)
    await db.update("Thing", "t", {"count": 2})
    [changed] = await db.select("Thing")
    assert changed["created_at"] == fresh["created_at"]
    assert changed["updated_at"] > changed["created_at"]
    assert changed["updated_at"].utcoffset() == timedelta(0)


async def test_json_text_stored_with_spacing_reads_back(db: DataFlow, raw: RawDB) -> None:
    # A database (or a hand-made row) may keep JSON text with spaces around it: the fast
    # parse falls back to json.loads, whatever the database gives back.
    _thing_model(db)
    base = {"name": "n", "count": 1, "ratio": 0.5, "flag": False, "data": {}, "items": []}
    await db.insert("Thing", {"id": "t", **base})
    text = ' \n{"k": [1, 2.5, "v"]}  '
    await raw.execute(f"UPDATE thing SET data = {_placeholder(raw)}", text)
    [row] = await db.select("Thing")
    assert row["data"] == {"k": [1, 2.5, "v"]}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '["x", {"y": null}]',
        "1.5",
        '"s"',
        " [1] ",
        "\t{}\n",
        "[1]  ",
        b'{"a": 1}',
        bytearray(b"[2]"),
        "NaN",
    ],
)
def test_load_json_matches_json_loads(text: Any) -> None:
    got, expected = load_json(text), json.loads(text)
    assert got == expected or (got != got and expected != expected)  # NaN
    assert type(got) is type(expected)


@pytest.mark.parametrize("text", ["", "   ", "nul", '{"a": 1', "[1] x", "[1,]", '{"a" 1}'])
def test_load_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        load_json(text)
    assert str(got.value) == str(expected.value)
