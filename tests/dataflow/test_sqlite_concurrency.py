"""SQLite: WAL journal, and several processes writing one file at the same time."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dataflow import DataFlow

WRITER = """
import asyncio, os, sys, time
from pathlib import Path

from dataflow import DataFlow

url, ready, go, me, count = sys.argv[1:6]

async def main():
    async with DataFlow(url) as db:

        @db.model
        class Row:
            id: str
            writer: str
            n: int

        Path(ready).touch()
        while not os.path.exists(go):
            time.sleep(0.001)
        for i in range(int(count)):
            await db.insert(Row, {"id": f"{me}-{i}", "writer": me, "n": i})
        # A transaction and a bulk insert compete for the lock as well.
        async with db.transaction() as tx:
            await tx.insert(Row, {"id": f"{me}-tx", "writer": me, "n": -1})
        bulk = [{"id": f"{me}-bulk{i}", "writer": me, "n": -2} for i in range(10)]
        await db.insert_many(Row, bulk)

asyncio.run(main())
"""


def _write_together(tmp_path: Path, url: str, writers: int, count: int) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                url,
                str(tmp_path / f"ready{i}"),
                str(go),
                f"w{i}",
                str(count),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{i}").exists() for i in range(writers)):
        assert time.monotonic() < deadline, "writers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.005)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err


def test_two_processes_write_500_rows_each_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    url = f"sqlite:///{path}"
    _write_together(tmp_path, url, writers=2, count=500)
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT writer, count(*) FROM row WHERE n >= 0 GROUP BY writer"
        ).fetchall()
        assert sorted(rows) == [("w0", 500), ("w1", 500)]
        assert conn.execute("SELECT count(*) FROM row").fetchone() == (1022,)
        assert conn.execute("SELECT count(DISTINCT id) FROM row").fetchone() == (1022,)
    finally:
        conn.close()

    async def check() -> None:
        async with DataFlow(url) as db:

            @db.model
            class Row:
                id: str
                writer: str
                n: int

            assert await db.count(Row, {"n": {"$gte": 0}}) == 1000
            got = await db.get(Row, "w1-499")
            assert got is not None and got["writer"] == "w1"

    asyncio.run(check())


async def test_wal_journal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with DataFlow(f"sqlite:///{path}") as db:

        @db.model
        class Thing:
            id: str

        await db.insert(Thing, {"id": "a"})
        conn = sqlite3.connect(path)
        try:
            # journal_mode is stored in the file: any connection sees it.
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            conn.close()


async def test_a_reader_is_not_blocked_by_an_open_write_transaction(tmp_path: Path) -> None:
    path = tmp_path / "rw.db"
    async with DataFlow(f"sqlite:///{path}") as db:

        @db.model
        class Thing:
            id: str

        await db.insert(Thing, {"id": "a"})
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            stamp = "2024-01-01T00:00:00.000000+00:00"
            other.execute("INSERT INTO thing VALUES ('b', ?, ?)", (stamp, stamp))
            # WAL: reads go on while another connection holds the write lock.
            assert await db.count(Thing) == 1
            other.execute("COMMIT")
        finally:
            other.close()
        assert await db.count(Thing) == 2


async def test_a_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with DataFlow(f"sqlite:///{path}", busy_timeout=10) as db:

        @db.model
        class Thing:
            id: str

        await db.insert(Thing, {"id": "a"})
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(db.insert(Thing, {"id": "b"}))
            await asyncio.sleep(0.2)
            assert not write.done()  # waiting for the lock, not failed
            other.execute("COMMIT")
            await asyncio.wait_for(write, 10)
        finally:
            other.close()
        assert await db.count(Thing) == 2
