"""Schema set-up: lazy, idempotent, race-free across processes, additive only."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from df_support import RawDB

from dataflow import DataFlow, Index, SchemaError

# Run by two OS processes at once: declare the same models, create them, write one row.
WORKER = """
import asyncio, os, sys, time
from pathlib import Path

from dataflow import DataFlow, Index

url, ready, go, me = sys.argv[1:5]

async def main():
    db = DataFlow(url)

    @db.model(indexes=[Index("status"), Index("tags", membership=True)])
    class Ticket:
        id: str
        status: str
        tags: list = []

    @db.model(indexes=[Index("email", unique=True)])
    class Member:
        id: str
        email: str

    @db.model
    class Note:
        id: str
        text: str

    Path(ready).touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    async with db:
        await db.initialize()
        await db.insert(Ticket, {"id": me, "status": "open", "tags": [me]})
        await db.insert(Member, {"id": me, "email": me + "@x"})
        await db.insert(Note, {"id": me, "text": me})

asyncio.run(main())
"""

TABLES = ("ticket", "member", "note")


def _run_together(
    tmp_path: Path, url: str, workers: int = 2
) -> list[subprocess.CompletedProcess[str]]:
    """Start ``workers`` processes, release them at the same moment, wait for all."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    procs = []
    for i in range(workers):
        ready = tmp_path / f"ready{i}"
        args = [sys.executable, str(script), url, str(ready), str(go), f"w{i}"]
        procs.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(workers)):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.005)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


async def test_two_processes_creating_the_same_tables_at_once(
    tmp_path: Path, db_url: str, raw: RawDB
) -> None:
    results = _run_together(tmp_path, db_url)
    for result in results:
        assert result.returncode == 0, result.stderr
    for table in TABLES:
        rows = await raw.fetch(f"SELECT id FROM {table} ORDER BY id")
        assert [r[0] for r in rows] == ["w0", "w1"]
    # Each table was created once: the loser of the race found it and changed nothing.
    versions = dict(await raw.fetch("SELECT table_name, version FROM dataflow_schema"))
    for table in TABLES:
        assert versions[table] == 1
    # The tables work for a third process, and membership survives the race.
    async with DataFlow(db_url) as db:

        @db.model(indexes=[Index("status"), Index("tags", membership=True)])
        class Ticket:
            id: str
            status: str
            tags: list = []  # noqa: RUF012

        assert [r["id"] for r in await db.select(Ticket, {"tags": {"$contains": "w1"}})] == ["w1"]


def _v1(db: DataFlow, table: str = "item") -> type:
    @db.model(table=table)
    class Item:
        id: str
        name: str
        count: int = 0

    return Item


async def test_tables_are_created_lazily_and_idempotently(db_url: str, raw: RawDB) -> None:
    async with DataFlow(db_url) as db:
        _v1(db)
        assert "item" not in await raw.tables()  # declaring a model touches nothing
        await db.insert("Item", {"id": "a", "name": "A"})
        assert "item" in await raw.tables()
    for _ in range(2):  # a second and third start change nothing and lose nothing
        async with DataFlow(db_url) as db:
            _v1(db)
            await db.initialize()
            await db.initialize()
            assert await db.count("Item") == 1
    assert await raw.scalar("SELECT version FROM dataflow_schema WHERE table_name = 'item'") == 1


async def test_a_new_optional_field_adds_its_column(db_url: str, raw: RawDB) -> None:
    async with DataFlow(db_url) as db:
        _v1(db)
        await db.insert("Item", {"id": "old", "name": "O", "count": 2})

    async with DataFlow(db_url) as db:

        @db.model
        class Item:
            id: str
            name: str
            count: int = 0
            note: str | None = None
            meta: dict | None = None
            due: datetime | None = None
            flag: bool | None = None

        old = await db.get(Item, "old")
        assert old is not None
        assert (old["name"], old["count"]) == ("O", 2)
        assert (old["note"], old["meta"], old["due"], old["flag"]) == (None, None, None, None)
        due = datetime(2030, 1, 1, tzinfo=UTC)
        new = {"id": "new", "name": "N", "note": "n", "meta": {"k": 1}, "due": due, "flag": True}
        await db.insert(Item, new)
        got = await db.get(Item, "new")
        assert got is not None and {k: got[k] for k in new} == new
        assert await db.count(Item, {"note": None}) == 1

    assert {"note", "meta", "due", "flag"} <= await raw.columns("item")
    assert await raw.scalar("SELECT version FROM dataflow_schema WHERE table_name = 'item'") == 2
    # The old model still works on the extended table.
    async with DataFlow(db_url) as db:
        _v1(db)
        assert await db.count("Item") == 2
        await db.insert("Item", {"id": "older", "name": "x"})


# Each case works on its own table, all in one test per database (set-up is the slow part).
REQUIRED_ADDITIONS: list[dict[str, Any]] = [
    {"required": str},
    {"owner": str, "due": datetime},
    # The Optional column comes first: it must not be added either.
    {"note": str | None, "required": int},
]


async def test_a_new_required_field_is_refused_and_nothing_changes(db_url: str, raw: RawDB) -> None:
    for i, extra in enumerate(REQUIRED_ADDITIONS):
        table = f"item_{i}"
        async with DataFlow(db_url) as db:
            _v1(db, table)
            await db.insert("Item", {"id": "a", "name": "A"})
        before = await raw.columns(table)

        async with DataFlow(db_url) as db:
            annotations = {"id": str, "name": str, "count": int, **extra}
            db.model(table=table)(type("Item", (), {"__annotations__": annotations, "count": 0}))
            with pytest.raises(SchemaError, match=table):
                await db.count("Item")
            with pytest.raises(SchemaError):  # and again: nothing was half-done the first time
                await db.initialize()

        assert await raw.columns(table) == before, extra
        version = await raw.scalar(
            f"SELECT version FROM dataflow_schema WHERE table_name = '{table}'"
        )
        assert version == 1
        async with DataFlow(db_url) as db:
            _v1(db, table)
            assert [r["id"] for r in await db.select("Item")] == ["a"]


TYPE_CHANGES: list[dict[str, Any]] = [
    {"id": str, "name": str, "count": str},  # int -> str
    {"id": str, "name": str, "count": float},  # int -> float
    {"id": str, "name": str, "count": bool},  # int -> bool
    {"id": str, "name": int, "count": int},  # str -> int
    {"id": str, "name": dict, "count": int},  # str -> JSON
    {"id": str, "name": str, "count": datetime},  # int -> datetime
]


async def test_a_type_change_is_refused_and_nothing_changes(db_url: str, raw: RawDB) -> None:
    for i, changed in enumerate(TYPE_CHANGES):
        table = f"item_{i}"
        async with DataFlow(db_url) as db:
            _v1(db, table)
            await db.insert("Item", {"id": "a", "name": "A", "count": 5})
        before = await raw.columns(table)

        async with DataFlow(db_url) as db:
            cls = type("Item", (), {"__annotations__": {**changed, "extra": str | None}})
            db.model(table=table)(cls)
            with pytest.raises(SchemaError, match=table):
                await db.get("Item", "a")

        assert await raw.columns(table) == before, changed
        async with DataFlow(db_url) as db:
            _v1(db, table)
            got = await db.get("Item", "a")
            assert got is not None and got["count"] == 5


async def test_a_refused_model_blocks_changes_to_the_others(db_url: str, raw: RawDB) -> None:
    async with DataFlow(db_url) as db:
        _v1(db)
        await db.insert("Item", {"id": "a", "name": "A"})
    before = await raw.columns("item")
    async with DataFlow(db_url) as db:

        @db.model
        class Item:
            id: str
            name: str
            count: int = 0
            note: str | None = None

        @db.model
        class Broken:
            id: str

        await db.initialize()  # creates "broken"
    async with DataFlow(db_url) as db:
        _v1(db)

        @db.model
        class Broken:  # type: ignore[no-redef]
            id: str
            needed: str

        with pytest.raises(SchemaError, match="broken"):
            await db.initialize()
    assert await raw.columns("item") == before | {"note"}
    assert await raw.columns("broken") == {"id", "created_at", "updated_at"}


async def test_declared_indexes_exist(db: DataFlow, raw: RawDB) -> None:
    @db.model(
        indexes=[
            Index("status"),
            Index("org", "slug", unique=True),
            Index("status", "created_at", name="ix_custom_name"),
            Index("tags", membership=True),
        ]
    )
    class Task:
        id: str
        status: str
        org: str
        slug: str
        tags: list = []  # noqa: RUF012

    await db.initialize()
    indexes = await raw.index_columns("task")
    found = set(indexes.values())
    assert ("status",) in found
    assert ("org", "slug") in found
    assert indexes.get("ix_custom_name") == ("status", "created_at")
    if raw.dialect == "postgresql":
        defs = [
            r[0]
            for r in await raw.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = 'task'")
        ]
        gin = [d for d in defs if "USING gin" in d]
        assert len(gin) == 1 and "tags" in gin[0]
        assert "task__tags" not in await raw.tables()
    else:
        assert await raw.columns("task__tags") == {"owner_id", "value"}
        side = set((await raw.index_columns("task__tags")).values())
        assert ("value", "owner_id") in side


async def test_index_added_to_an_existing_model_is_created(db_url: str, raw: RawDB) -> None:
    async with DataFlow(db_url) as db:
        _v1(db)
        await db.insert("Item", {"id": "a", "name": "A"})
    async with DataFlow(db_url) as db:

        @db.model(indexes=[Index("name")])
        class Item:
            id: str
            name: str
            count: int = 0

        await db.initialize()
    assert ("name",) in set((await raw.index_columns("item")).values())


def _notes(db: DataFlow, indexes: list[Index]) -> None:
    @db.model(table="note", indexes=indexes)
    class Note:
        id: str
        author: str | None = None
        created: datetime | None = None


async def test_an_unindexed_text_field_that_becomes_indexed_keeps_its_rows(
    db_url: str, raw: RawDB
) -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    async with DataFlow(db_url) as db:
        _notes(db, [])
        await db.insert("Note", {"id": "a", "author": "ann", "created": when})
        await db.insert("Note", {"id": "b"})
    async with DataFlow(db_url) as db:
        _notes(db, [Index("author", "created")])  # MySQL stored it as MEDIUMTEXT
        rows = await db.select("Note", {"author": "ann"}, order_by="created")
        assert [r["id"] for r in rows] == ["a"]
        assert (await db.get("Note", "b"))["author"] is None
    assert ("author", "created") in set((await raw.index_columns("note")).values())


async def test_a_text_too_long_to_index_is_a_schema_error_on_mysql(db_url: str, raw: RawDB) -> None:
    async with DataFlow(db_url) as db:
        _notes(db, [])
        await db.insert("Note", {"id": "a", "author": "x" * 300})
    async with DataFlow(db_url) as db:
        _notes(db, [Index("author", "created")])
        if raw.dialect != "mysql":  # the others index any text
            assert (await db.get("Note", "a"))["author"] == "x" * 300
            return
        for _ in range(2):  # nothing was half-done: the same error again
            with pytest.raises(SchemaError, match=r"note\.author .* longer than 255"):
                await db.initialize()
    async with DataFlow(db_url) as db:
        _notes(db, [])
        assert (await db.get("Note", "a"))["author"] == "x" * 300
