"""Capture the statements our backend sends, and replay them with the raw drivers.

During an untimed capture pass, :class:`Recorder` wraps the connections a
:class:`~dataflow.DataFlow` backend hands out, so every ``fetch``, ``execute``,
``executemany`` (and ``begin``/``commit``/``rollback``; SQLite's ``BEGIN
IMMEDIATE``/``COMMIT`` arrive as ``execute``) is logged with its SQL text,
arguments and result size. A :class:`Replayer` then sends exactly those
statements through a raw driver connection: the baseline is the same work,
not a hand-written approximation of it. Only bench code is patched, and only
while recording; the timed calls of our code run unpatched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from dataflow import DataFlow

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


class _Recording:
    """A connection proxy appending every call to a shared log."""

    __slots__ = ("_conn", "_log")

    def __init__(self, conn: Any, log: list[Stmt]) -> None:
        self._conn = conn
        self._log = log

    def __getattr__(self, name: str) -> Any:  # .raw, .busy_timeout, ...
        return getattr(self._conn, name)

    async def fetch(self, sql: str, args: Sequence[Any]) -> Any:
        rows = await self._conn.fetch(sql, args)
        self._log.append(Stmt("fetch", sql, tuple(args), len(rows)))
        return rows

    async def execute(self, sql: str, args: Sequence[Any]) -> Any:
        n = await self._conn.execute(sql, args)
        self._log.append(Stmt("execute", sql, tuple(args), int(n)))
        return n

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)
        self._log.append(Stmt("executemany", sql, tuple(tuple(r) for r in rows)))

    async def begin(self) -> None:
        await self._conn.begin()
        self._log.append(Stmt("begin", self._conn.begin_sql, ()))

    async def commit(self) -> None:
        await self._conn.commit()
        self._log.append(Stmt("commit", "COMMIT", ()))

    async def rollback(self) -> None:
        await self._conn.rollback()
        self._log.append(Stmt("rollback", "ROLLBACK", ()))


@dataclass
class Recorder:
    """Records the driver calls of a DataFlow handle while installed.

    Use ``async with Recorder(db) as rec:`` and ``rec.take()`` after each call.
    """

    db: DataFlow

    def __post_init__(self) -> None:
        self.log: list[Stmt] = []
        self._undo: list[tuple[Any, str, Any]] = []

    async def __aenter__(self) -> Recorder:
        backend = await self.db._backend()
        log = self.log
        pool = getattr(backend, "pool", None)
        if pool is None:  # pragma: no cover - a new backend kind
            raise TypeError(f"cannot record {type(backend).__name__}")
        # Every dialect's backend hands out pooled connections: wrap what the pool gives.
        get, put = pool.get, pool.put

        async def rec_get(**kwargs: Any) -> Any:
            return _Recording(await get(**kwargs), log)

        def rec_put(conn: Any, *, broken: bool) -> None:
            raw = conn._conn if isinstance(conn, _Recording) else conn
            put(raw, broken=broken)

        pool.get, pool.put = rec_get, rec_put
        self._undo += [(pool, "get", None), (pool, "put", None)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for obj, attr, old in reversed(self._undo):
            if old is None:
                delattr(obj, attr)  # the instance attribute hid the class method
            else:
                setattr(obj, attr, old)
        self._undo.clear()

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
