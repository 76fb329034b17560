"""Capture the statements our backend sends, and replay them with the raw drivers.

During an untimed capture pass, :class:`Recorder` listens to the driver calls
of a :class:`~dataflow.DataFlow` handle (its supported hook,
``db.on_driver_call``), so every ``fetch``, ``execute``, ``executemany``,
``script`` (a write batch sent at once), ``results`` (reads sent at once) and
``begin``/``commit``/``rollback`` is logged with its SQL text, arguments and
result size. A :class:`Replayer` then sends exactly those statements through a
raw driver connection: the baseline is the same work. The hook is removed
after recording; the timed calls of our code run without it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from dataflow import DataFlow, DriverCall

__all__ = [
    "AiosqliteReplayer",
    "AsyncmyReplayer",
    "AsyncpgReplayer",
    "Recorder",
    "Replayer",
    "SQLite3Replayer",
    "Stmt",
]


class Stmt(NamedTuple):
    """One recorded driver call; ``result`` is rows fetched or rows matched (-1: none)."""

    method: str
    sql: str
    args: tuple[Any, ...]
    result: int = -1


@dataclass
class Recorder:
    """Records the driver calls of a DataFlow handle while installed, through the
    library's own hook (:meth:`DataFlow.on_driver_call`).

    Use ``async with Recorder(db) as rec:`` and ``rec.take()`` after each call.
    """

    db: DataFlow

    def __post_init__(self) -> None:
        self.log: list[Stmt] = []
        self._remove: Callable[[], None] | None = None

    def _record(self, call: DriverCall) -> None:
        self.log.append(Stmt(call.method, call.sql, call.args, call.result))

    async def __aenter__(self) -> Recorder:
        self._remove = self.db.on_driver_call(self._record)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

    def take(self) -> list[Stmt]:
        """The calls logged since the previous ``take``."""
        out = list(self.log)
        self.log.clear()
        return out


class Replayer(Protocol):
    """Sends recorded statements through one raw driver connection."""

    name: str

    async def replay(self, stmts: Sequence[Stmt]) -> list[int]:
        """Run ``stmts`` in order; return each one's result size (as :class:`Stmt`)."""
        ...

    async def recover(self) -> None:
        """After a failed replay: roll back a transaction it left open."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


def _tail_count(status: str) -> int:
    tail = status.rpartition(" ")[2]
    return int(tail) if tail.isdigit() else 0


class AsyncpgReplayer:
    """asyncpg: ``fetch``/``execute``/``executemany`` on one reused connection."""

    name = "asyncpg"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def replay(self, stmts: Sequence[Stmt]) -> list[int]:
        conn, out = self.conn, []
        for s in stmts:
            if s.method == "fetch":
                out.append(len(await conn.fetch(s.sql, *s.args)))
            elif s.method == "execute":
                out.append(_tail_count(await conn.execute(s.sql, *s.args)))
            elif s.method == "executemany":
                await conn.executemany(s.sql, s.args)
                out.append(-1)
            elif s.method == "script":  # a write batch: one statement, its counts
                out.append(sum(await conn.fetchrow(s.sql, *s.args)))
            else:  # begin / commit / rollback
                await conn.execute(s.sql)
                out.append(-1)
        return out

    async def recover(self) -> None:
        if self.conn.is_in_transaction():
            await self.conn.execute("ROLLBACK")

    async def close(self) -> None:
        await self.conn.close(timeout=2)


class AsyncmyReplayer:
    """asyncmy: one cursor per replayed operation on one reused connection."""

    name = "asyncmy"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def replay(self, stmts: Sequence[Stmt]) -> list[int]:
        conn, out = self.conn, []
        async with conn.cursor() as cur:
            for s in stmts:
                if s.method == "fetch":
                    await cur.execute(s.sql, s.args)
                    out.append(len(await cur.fetchall()))
                elif s.method == "execute":
                    out.append(int(await cur.execute(s.sql, s.args)))
                elif s.method == "executemany":
                    await cur.executemany(s.sql, s.args)
                    out.append(-1)
                elif s.method in ("script", "results"):  # several statements at once
                    out.append(await _all_sets(cur, s))
                elif s.method == "begin":
                    await conn.begin()
                    out.append(-1)
                elif s.method == "commit":
                    await conn.commit()
                    out.append(-1)
                else:
                    await conn.rollback()
                    out.append(-1)
        return out

    async def recover(self) -> None:
        await self.conn.rollback()

    async def close(self) -> None:
        self.conn.close()


async def _all_sets(cur: Any, s: Stmt) -> int:
    """Send a multi-statement script; read every result (a script: its counts' sum;
    queries: rows in all)."""
    await cur.execute(s.sql, s.args)
    rows: list[Any] = []
    while True:
        if cur.description:
            got = await cur.fetchall()
            rows = [*rows, *got] if s.method == "results" else list(got)
        if not await cur.nextset():
            break
    return len(rows) if s.method == "results" else sum(int(v) for v in rows[0])


class AiosqliteReplayer:
    """aiosqlite: one worker-thread hop per statement, as aiosqlite users pay."""

    name = "aiosqlite"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def replay(self, stmts: Sequence[Stmt]) -> list[int]:
        conn, out = self.conn, []
        for s in stmts:
            if s.method == "fetch":
                out.append(len(await conn.execute_fetchall(s.sql, s.args)))
            elif s.method == "executemany":
                await conn.executemany(s.sql, s.args)
                out.append(-1)
            else:
                cur = await conn.execute(s.sql, s.args)
                out.append(cur.rowcount if s.method == "execute" else -1)
        return out

    async def recover(self) -> None:
        if self.conn.in_transaction:
            await self.conn.rollback()

    async def close(self) -> None:
        await self.conn.close()


class SQLite3Replayer:
    """Plain ``sqlite3`` in the calling thread: the floor for an embedded database."""

    name = "sqlite3"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def replay(self, stmts: Sequence[Stmt]) -> list[int]:
        conn, out = self.conn, []
        for s in stmts:
            if s.method == "fetch":
                out.append(len(conn.execute(s.sql, s.args).fetchall()))
            elif s.method == "executemany":
                conn.executemany(s.sql, s.args)
                out.append(-1)
            else:
                out.append(conn.execute(s.sql, s.args).rowcount)
        return out

    async def recover(self) -> None:
        if self.conn.in_transaction:
            self.conn.rollback()

    async def close(self) -> None:
        self.conn.close()
