"""SQLite through the standard ``sqlite3`` module, run in the event loop's thread.

SQLite is embedded: a short statement on a WAL database costs microseconds, far
less than a hop to a worker thread. Statements therefore run in the loop's
thread with SQLite's own busy timeout at zero; when another process holds the
write lock, SQLite answers "busy" at once and we wait with ``asyncio.sleep``
and try again until ``busy_timeout`` runs out, so the loop never blocks on a
lock. A busy statement did nothing, which makes the retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sa_sqlite

from dataflow.dialects.base import Backend, Dialect
from dataflow.errors import (
    ConcurrencyError,
    ConnectionLostError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    ValidationError,
)
from dataflow.models import Kind

__all__ = ["SQLiteDialect"]

T = TypeVar("T")
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def _encode_dt(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _decode_dt(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is UTC:  # what we write
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    # sqlite_errorcode is the extended code (e.g. SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT
    # while another process opens the WAL): its low byte is the primary code.
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _BUSY


class _Connection:
    """``sqlite3`` connection with async, busy-aware methods."""

    def __init__(self, raw: sqlite3.Connection, busy_timeout: float) -> None:
        self.raw = raw
        self.busy_timeout = busy_timeout

    async def _retry(self, fn: Callable[[], T]) -> T:
        delay, deadline = 0.0005, 0.0
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                deadline = deadline or now + self.busy_timeout
                if now >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        return await self._retry(lambda: self.raw.execute(sql, args).fetchall())

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        return await self._retry(lambda: self.raw.execute(sql, args).rowcount)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._retry(lambda: self.raw.executemany(sql, rows))


class SQLiteBackend(Backend):
    """One shared connection, serialized per event loop by a lock."""

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None

    def _check_reentry(self) -> None:
        # Waiting for the lock our own task holds would wait forever.
        if self._holder is not None and self._holder is asyncio.current_task():
            raise DataFlowError(
                "this task is inside `async with db.transaction() as tx:`; "
                "use tx (not db) for operations in the block"
            )

    async def run(self, fn: Callable[[Any], Awaitable[T]], *, atomic: bool) -> T:
        if atomic:
            return await super().run(fn, atomic=True)
        self._check_reentry()
        async with self._lock:
            return await fn(self.conn)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        self._check_reentry()
        async with self._lock:
            yield self.conn

    async def begin(self) -> Any:
        self._check_reentry()
        await self._lock.acquire()
        try:
            # IMMEDIATE takes the write lock up front: no deadlock on lock upgrade.
            await self.conn.execute("BEGIN IMMEDIATE", ())
        except BaseException:
            self._lock.release()
            raise
        self._holder = asyncio.current_task()
        return self.conn

    async def end(self, conn: Any, error: BaseException | None) -> None:
        try:
            if error is None:
                try:
                    await conn.execute("COMMIT", ())
                except BaseException:
                    conn.raw.rollback()
                    raise
            else:
                conn.raw.rollback()
        finally:
            self._holder = None
            self._lock.release()

    async def close(self) -> None:
        """The connection belongs to the dialect, which closes it."""


class SQLiteDialect(Dialect):
    """SQLite: WAL journal, busy timeout, JSON text, timestamps as ISO-8601 UTC text."""

    name = "sqlite"
    encode_datetime = staticmethod(_encode_dt)
    decode_datetime = staticmethod(_decode_dt)
    bool_as_int = True
    columns_sql = "SELECT name, type FROM pragma_table_info(?)"
    indexes_sql = "SELECT name FROM pragma_index_list(?)"
    # SQLite's JSON functions re-print floats with 15 significant digits, so a
    # merge in SQL would alter stored numbers; merges run row by row instead,
    # atomic under the transaction's write lock.
    json_merge_in_sql = False
    OPTIONS = frozenset({"busy_timeout", "connect_timeout", "pool_size"})

    def __init__(self, url: Any, options: dict[str, Any]) -> None:
        super().__init__(url, options)
        self.sa_dialect = sa_sqlite.pysqlite.dialect()
        self.path = url.database or ":memory:"
        self.busy_timeout = float(options.get("busy_timeout", 5.0))
        self._conn: _Connection | None = None

    def column_type(self, kind: Kind, *, key: bool) -> Any:
        return {
            Kind.STR: sa.String(255) if key else sa.Text(),
            Kind.INT: sa.BigInteger(),
            Kind.FLOAT: sa.Double(),
            Kind.BOOL: sa.Boolean(),
            Kind.DATETIME: sa.String(32),
            Kind.JSON: sa.JSON(),
        }[kind]

    def kind_of(self, db_type: str) -> Kind | None:
        return {
            "text": Kind.STR,
            "json": Kind.JSON,
            "bigint": Kind.INT,
            "double": Kind.FLOAT,
            "boolean": Kind.BOOL,
            "varchar(32)": Kind.DATETIME,
            "varchar(255)": Kind.STR,
        }.get(db_type)

    def classify(self, exc: BaseException) -> type[DataFlowError] | None:
        if isinstance(exc, sqlite3.IntegrityError):
            text = str(exc)
            return (
                DuplicateKeyError if "UNIQUE" in text or "PRIMARY KEY" in text else IntegrityError
            )
        if _is_busy(exc):
            return ConcurrencyError
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc):
            return ConnectionLostError
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            return ConnectionLostError
        if isinstance(exc, sqlite3.DataError | OverflowError | UnicodeEncodeError):
            return ValidationError
        if isinstance(exc, sqlite3.Error):
            return DataFlowError
        return None

    def _enable_wal(self, raw: sqlite3.Connection) -> None:
        """Switch to WAL, retrying: the switch reports "locked" at once, without
        waiting, while another process is opening or switching the same file."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                raw.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _open(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            # Setup runs in a worker thread, so SQLite may wait here itself.
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._enable_wal(raw)
            raw.execute("PRAGMA synchronous = NORMAL")
            raw.execute("PRAGMA foreign_keys = ON")
            # LIKE is case-sensitive on PostgreSQL and MySQL (binary collation): here too.
            raw.execute("PRAGMA case_sensitive_like = ON")
            raw.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            raw.close()
            raise
        return raw

    async def open_backend(self) -> Backend:
        if self._conn is None:
            try:
                raw = await asyncio.to_thread(self._open)
            except (OSError, sqlite3.Error) as exc:  # e.g. a directory that cannot be made
                raise self.connection_error(exc) from exc
            if self._conn is None:
                self._conn = _Connection(raw, self.busy_timeout)
            else:  # pragma: no cover - another loop opened it meanwhile
                raw.close()
        return SQLiteBackend(self._conn)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.raw.close()

    def schema_lock(self, conn: Any) -> contextlib.AbstractAsyncContextManager[None]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        return contextlib.nullcontext()

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> Any:
        stmt = sa_sqlite.insert(table).values(
            {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns}
        )
        return stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={n: stmt.excluded[n] for n in update_columns}
        )


DIALECT = SQLiteDialect
