"""SQLite through the standard ``sqlite3`` module, run in the event loop's thread.

SQLite is embedded: a short statement on a WAL database costs microseconds, far
less than a hop to a worker thread. Statements therefore run in the loop's
thread with SQLite's own busy timeout at zero; when another connection holds
the write lock, SQLite answers "busy" at once and we wait with ``asyncio.sleep``
and try again until ``busy_timeout`` runs out, so the loop never blocks on a
lock. A busy statement did nothing, which makes the retry safe.

Each event loop (so each thread) has its own connection, in a pool of one: two
loops never share a transaction. An in-memory database is a named shared-cache
database, so every loop of the handle sees the same data until ``close()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sa_sqlite

from dataflow.dialects.connection import Connection
from dataflow.dialects.pool import PooledDialect
from dataflow.errors import (
    ConcurrencyError,
    ConnectionLostError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    TimeoutError,
    ValidationError,
)
from dataflow.models import Kind
from dataflow.options import COMMON, Option, choice, seconds

__all__ = ["SQLiteDialect"]

logger = logging.getLogger("dataflow")

T = TypeVar("T")
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
#: SQLite VM instructions between two checks of the statement deadline.
_PROGRESS_STEPS = 1000


def _encode_dt(value: datetime) -> str:
    return value.isoformat(timespec="microseconds")


def _decode_dt(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is UTC:  # what we write
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _primary_code(exc: BaseException) -> int | None:
    # sqlite_errorcode is the extended code (e.g. SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT
    # while another process opens the WAL): its low byte is the primary code.
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and _primary_code(exc) in _BUSY


class _Connection(Connection):
    """A ``sqlite3`` connection with async, busy-aware methods."""

    __slots__ = ("_deadline", "busy_timeout", "command_timeout")
    # Statements run synchronously: a cancellation only ever interrupts a busy wait.
    cancel_breaks = False
    # IMMEDIATE takes the write lock up front: no deadlock on lock upgrade.
    begin_sql = "BEGIN IMMEDIATE"

    def __init__(self, raw: sqlite3.Connection, dialect: SQLiteDialect) -> None:
        super().__init__(raw, dialect)
        self.busy_timeout = dialect.busy_timeout
        self.command_timeout = dialect.command_timeout
        self._deadline = 0.0
        if self.command_timeout is not None:
            raw.set_progress_handler(self._over_time, _PROGRESS_STEPS)

    def _over_time(self) -> bool:
        return time.monotonic() > self._deadline

    async def _retry(self, fn: Callable[[], T]) -> T:
        # Short sleeps: the task holds this process's one connection while it waits, and
        # the other process's write lock is usually released within a millisecond.
        delay, deadline = 0.0001, 0.0
        while True:
            if self.command_timeout is not None:
                self._deadline = time.monotonic() + self.command_timeout
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
            delay = min(delay * 2, 0.002)

    def _fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Sequence[Any]]]:
        return self._retry(lambda: self.raw.execute(sql, args).fetchall())

    def _execute(self, sql: str, args: Sequence[Any]) -> Awaitable[int]:
        return self._retry(lambda: self.raw.execute(sql, args).rowcount)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]:
        return self._retry(lambda: self.raw.executemany(sql, rows))

    def _begin(self) -> Awaitable[None]:
        return self._retry(self._run_begin)

    def _run_begin(self) -> None:
        self.raw.execute(self.begin_sql)

    def _commit(self) -> Awaitable[None]:
        return self._retry(self._run_commit)

    def _run_commit(self) -> None:
        self.raw.execute("COMMIT")

    async def _rollback(self) -> None:
        self.raw.rollback()


class SQLiteDialect(PooledDialect):
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
    #: ``pool_size`` is accepted for portable URLs; each event loop has one connection.
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        **COMMON,
        "busy_timeout": seconds(5.0, zero=True),
        "synchronous": choice("full", "off", "normal", "full", "extra"),
    }

    def __init__(self, url: Any, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self.pool_size = 1
        self.sa_dialect = sa_sqlite.pysqlite.dialect()
        self.path = url.database or ":memory:"
        self.volatile = self.path == ":memory:"
        self.busy_timeout: float = options["busy_timeout"]
        self.synchronous: str = options["synchronous"].upper()
        # An in-memory database lives while one of its connections is open: the
        # dialect keeps one (the keeper) until close(); a fresh name after each close.
        self._memory: tuple[str, sqlite3.Connection] | None = None
        self._retired: list[sqlite3.Connection] = []
        self._memory_lock = threading.Lock()

    def column_type(self, kind: Kind, *, key: bool) -> sa.types.TypeEngine[Any]:
        types: dict[Kind, sa.types.TypeEngine[Any]] = {
            Kind.STR: sa.String(255) if key else sa.Text(),
            Kind.INT: sa.BigInteger(),
            Kind.FLOAT: sa.Double(),
            Kind.BOOL: sa.Boolean(),
            Kind.DATETIME: sa.String(32),
            Kind.JSON: sa.JSON(),
        }
        return types[kind]

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
        if isinstance(exc, sqlite3.OperationalError) and _primary_code(exc) == 9:  # INTERRUPT
            return TimeoutError
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
                mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() not in ("wal", "memory"):
                    # E.g. a file system without shared memory: readers then wait for
                    # writers (busy_timeout), which is slower but still correct.
                    logger.warning("SQLite keeps journal_mode=%s (WAL not available)", mode)
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _memory_name(self) -> str:
        with self._memory_lock:  # loops of several threads may open at once
            if self._memory is None:
                name = f"file:dataflow-{uuid.uuid4().hex}?mode=memory&cache=shared"
                self._memory = (name, self._connect_raw(name, uri=True))
            return self._memory[0]

    def _connect_raw(self, target: str, *, uri: bool) -> sqlite3.Connection:
        if not uri:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        raw = sqlite3.connect(target, isolation_level=None, check_same_thread=False, uri=uri)
        try:
            # Setup runs in a worker thread, so SQLite may wait here itself.
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._enable_wal(raw)
            raw.execute(f"PRAGMA synchronous = {self.synchronous}")
            raw.execute("PRAGMA foreign_keys = ON")
            # LIKE is case-sensitive on PostgreSQL and MySQL (binary collation): here too.
            raw.execute("PRAGMA case_sensitive_like = ON")
            raw.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            raw.close()
            raise
        return raw

    def _open_sync(self) -> sqlite3.Connection:
        try:
            if self.path == ":memory:":
                return self._connect_raw(self._memory_name(), uri=True)
            return self._connect_raw(self.path, uri=False)
        except (OSError, sqlite3.Error) as exc:  # e.g. a directory that cannot be made
            raise self.connection_error(exc) from exc

    async def _open(self) -> _Connection:
        return _Connection(await asyncio.to_thread(self._open_sync), self)

    async def _close(self, conn: Connection) -> None:
        conn.raw.close()

    def _kill(self, conn: Connection) -> None:
        conn.raw.close()

    def retire(self) -> None:
        # The next connection opens a new in-memory database; the old one lives on
        # only while connections of the old generation do.
        with self._memory_lock:
            if self._memory is not None:
                self._retired.append(self._memory[1])
            self._memory = None

    async def close(self) -> None:
        with self._memory_lock:
            retired, self._retired = self._retired, []
        for keeper in retired:
            keeper.close()

    def schema_lock(self, conn: Connection) -> AbstractAsyncContextManager[None]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        return nullcontext()

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> sa.Insert:
        stmt = sa_sqlite.insert(table).values(
            {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns}
        )
        return stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={n: stmt.excluded[n] for n in update_columns}
        )


DIALECT = SQLiteDialect
