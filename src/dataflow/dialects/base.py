"""What every dialect provides: the :class:`Dialect` and its :class:`Backend`.

A :class:`Dialect` is created from the URL and options, without connecting. It
maps model kinds to column types and Python values to driver values, builds
the few statements that differ between databases, classifies driver errors,
and opens a :class:`Backend` (connections bound to one event loop). The
connections themselves, and the translation of driver errors, are in
:mod:`dataflow.dialects.connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from dataflow.dialects.connection import Connection, DriverCall, first_line, translate_error
from dataflow.errors import (
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    TimeoutError,
)
from dataflow.models import Kind
from dataflow.options import COMMON, Option

if TYPE_CHECKING:
    import sqlalchemy as sa

    from dataflow.urls import DatabaseURL

__all__ = [
    "GUARD",
    "Backend",
    "BatchPart",
    "Connection",
    "Converter",
    "Dialect",
    "translate_error",
]

Converter = Callable[[Any], Any]
T = TypeVar("T")

#: Where a batch statement's condition on an earlier statement goes (its WHERE clause).
GUARD = "__dataflow_guard__"


class BatchPart(NamedTuple):
    """One statement of a write batch (see :mod:`dataflow.batch`)."""

    #: The compiled statement, with :data:`GUARD` in its WHERE clause when guarded
    #: ("" for a notification, whose arguments are the channel and payload).
    sql: str
    #: What identifies its shape (with the guards: the script's cache key).
    key: Any
    #: How many of the script's arguments, in order, are its own.
    nargs: int
    #: The earlier part that must have matched a row for this one to run, or None.
    guard: int | None
    notify: bool


class Backend(ABC):
    """Connections to one database, usable from one event loop."""

    @abstractmethod
    async def begin(self) -> Connection:
        """Borrow a connection and start a transaction on it."""

    @abstractmethod
    async def end(self, conn: Connection, error: BaseException | None) -> None:
        """Commit (``error`` is None) or roll back, then give the connection back.

        Raises:
            DataFlowError: The commit failed (the transaction is rolled back).
        """

    @abstractmethod
    async def run(self, fn: Callable[[Connection], Awaitable[T]], *, atomic: bool) -> T:
        """Run ``fn`` on a borrowed connection (inside a transaction when ``atomic``)."""

    async def _run_atomic(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        conn = await self.begin()
        try:
            result = await fn(conn)
        except BaseException as exc:
            await self.end(conn, exc)
            raise
        await self.end(conn, None)
        return result

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """Borrow a connection inside a transaction committed on clean exit."""
        conn = await self.begin()
        try:
            yield conn
        except BaseException as exc:
            await self.end(conn, exc)
            raise
        await self.end(conn, None)

    @abstractmethod
    async def close(self) -> None:
        """Close every connection; idempotent."""

    def abandon(self) -> None:  # noqa: B027 - optional hook
        """Drop every connection without the event loop, which has been closed."""


class Dialect(ABC):
    """Everything that differs between databases, behind one small surface."""

    name: str
    sa_dialect: sa.engine.Dialect
    #: True when a JSON list column can carry a native membership index.
    native_membership_index: bool = False
    #: True when the database can push notifications to listeners.
    supports_notify: bool = False
    #: False when SQL JSON functions would alter values (merges then run row by row).
    json_merge_in_sql: bool = True
    #: False when the planner answers ``$or`` of differently indexed conditions with an
    #: ORDER BY ... LIMIT by walking the order's index (a scan): callers that know
    #: such a query is hot then run one query per branch.
    or_uses_indexes: bool = True
    #: True when the data is gone once the dialect is closed (an in-memory database).
    volatile: bool = False
    #: True when a write batch can be sent as one script (:meth:`batch_script`).
    supports_batch_script: bool = False
    #: How ``get_with`` folds related reads into one round trip: ``"json"`` (one
    #: statement, :meth:`fold_sql`), ``"script"`` (a multi-statement script,
    #: ``Connection.results``) or None (a query each).
    fold_reads: str | None = None
    #: Options ``DataFlow(url, **options)`` and the URL's query accept.
    OPTIONS: ClassVar[Mapping[str, Option]] = COMMON

    def __init__(self, url: DatabaseURL, options: Mapping[str, Any]) -> None:
        self.url = url
        self.options = dict(options)
        self.connect_timeout: float = options["connect_timeout"]
        self.pool_timeout: float = options["pool_timeout"]
        self.command_timeout: float | None = options["command_timeout"]
        #: Called after every driver call (:meth:`DataFlow.on_driver_call`); usually none.
        self.call_hooks: list[Callable[[DriverCall], None]] = []

    @abstractmethod
    def column_type(self, kind: Kind, *, key: bool) -> sa.types.TypeEngine[Any]:
        """SQLAlchemy type for a field kind; ``key`` when the column is indexed."""

    #: Aware UTC datetime -> driver value and back; None where the driver takes and
    #: returns aware datetimes itself. Set them as ``staticmethod``s.
    encode_datetime: Converter | None = None
    decode_datetime: Converter | None = None
    #: True when booleans come back as 0/1 integers.
    bool_as_int: bool = False

    def encoder(self, kind: Kind) -> Converter | None:
        """Python value -> driver value, or None when no conversion is needed."""
        return self.encode_datetime if kind is Kind.DATETIME else None

    def decoder(self, kind: Kind) -> Converter | None:
        """Driver value -> Python value, or None when no conversion is needed."""
        if kind is Kind.DATETIME:
            return self.decode_datetime
        return bool if kind is Kind.BOOL and self.bool_as_int else None

    @abstractmethod
    def classify(self, exc: BaseException) -> type[DataFlowError] | None:
        """Map a driver exception to an error class of our tree, or None if not ours."""

    def breaks(self, exc: BaseException) -> bool:
        """Whether ``exc`` leaves its connection in an unknown state (it is then closed,
        never reused), although the connection itself was not lost."""
        return False

    @abstractmethod
    async def open_backend(self) -> Backend:
        """Open connections for the running event loop (lazily where possible)."""

    #: Query of ``(column name, data type)`` rows of the table named by its one parameter.
    columns_sql: str
    #: Query of the index names of the table named by its one parameter.
    indexes_sql: str

    async def table_columns(self, conn: Connection, table: str) -> dict[str, str] | None:
        """Stored columns of ``table`` as ``{name: lowercase type}``; None if absent."""
        rows = await conn.fetch(self.columns_sql, [table])
        return {r[0].lower(): r[1].lower() for r in rows} or None

    async def index_names(self, conn: Connection, table: str) -> set[str]:
        """Lowercase names of the indexes stored on ``table``."""
        return {r[0].lower() for r in await conn.fetch(self.indexes_sql, [table])}

    @abstractmethod
    def schema_lock(self, conn: Connection) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialize schema changes across processes (inside ``conn``'s transaction)."""

    async def prepare_index(  # noqa: B027 - a hook, a no-op unless a dialect needs it
        self, conn: Connection, table: sa.Table, index: sa.Index
    ) -> None:
        """Make an existing table's columns indexable before ``index`` is added to it.

        Nothing to do by default: only MySQL stores unindexed text in a type it
        cannot index (see :meth:`MySQLDialect.prepare_index`).
        """

    async def run_ddl(self, conn: Connection, sql: str, args: Sequence[Any]) -> None:
        """Run one DDL statement of the schema set-up (see :mod:`dataflow.schema`)."""
        await conn.execute(sql, args)

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> sa.Insert:
        """INSERT ... ON CONFLICT (id) DO UPDATE, with one bind per column."""
        raise NotImplementedError  # pragma: no cover - every dialect overrides

    def json_merge(
        self,
        column: sa.ColumnElement[Any],
        doc: sa.BindParameter[Any],
        paths: Sequence[sa.BindParameter[str]],
    ) -> sa.ColumnElement[Any]:
        """Expression: JSON object ``column`` with the top-level keys of ``doc`` set.

        ``paths`` holds one bind per key, valued with :meth:`json_path`.
        """
        raise NotImplementedError  # pragma: no cover - every dialect overrides

    def json_contains(
        self, column: sa.ColumnElement[Any], element: sa.BindParameter[Any]
    ) -> sa.ColumnElement[bool]:
        """Native JSON-array membership test (only with ``native_membership_index``)."""
        raise NotImplementedError  # pragma: no cover

    def order_nullable(
        self, column: sa.ColumnElement[Any], desc: bool
    ) -> list[sa.UnaryExpression[Any]]:
        """ORDER BY keys for a nullable column: NULL sorts as the largest value everywhere."""
        return [column.desc().nulls_first() if desc else column.asc().nulls_last()]

    def limit_delete(
        self,
        stmt: sa.Delete,
        table: sa.Table,
        where: sa.ColumnElement[bool],
        limit: sa.BindParameter[int],
    ) -> sa.Delete:
        """Restrict a DELETE to at most ``limit`` matching rows, in no particular order.

        No ORDER BY on purpose: it lets the database find the rows through the
        filter's index instead of walking the primary key.
        """
        import sqlalchemy as sa

        inner = sa.select(table.c.id).where(where).limit(limit).scalar_subquery()
        return stmt.where(table.c.id.in_(inner))

    def membership_index(self, table: sa.Table, column: str, name: str) -> sa.Index:
        """Declare a native membership index (only with ``native_membership_index``)."""
        raise NotImplementedError  # pragma: no cover

    def membership_value(self, element_json: str) -> str:
        """Driver value compared by :meth:`json_contains` for one JSON-encoded element."""
        return element_json

    def json_key_addressable(self, key: str) -> bool:
        """Whether :meth:`json_merge` can set top-level ``key`` (else merges of it run row
        by row, on rows locked for the transaction)."""
        return True

    def json_path(self, key: str) -> str:
        """Path of a top-level JSON object key, as :meth:`json_merge` expects it: the
        key as a JSON string literal (control characters escaped, as paths need)."""
        return "$." + json.dumps(key, ensure_ascii=False)

    def kind_of(self, db_type: str) -> Kind | None:
        """The field kind a stored column type holds, or None when unsure."""
        return None

    def retire(self) -> None:  # noqa: B027 - optional hook
        """Start afresh: connections opened from now on belong to a new generation
        (called under the handle's lock by ``close()``, before :meth:`close`)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the dialect holds beyond its backends."""

    def batch_script(self, parts: Sequence[BatchPart]) -> str:
        """One script running ``parts`` atomically, each only if its guard matched a
        row, answering one row: each part's row count (with ``supports_batch_script``;
        its arguments are the parts' arguments in order)."""
        raise NotImplementedError  # pragma: no cover

    def fold_sql(
        self, main: str, main_args: int, related: Sequence[tuple[str, int, tuple[str, ...]]]
    ) -> str:
        """One query: ``main``'s row plus, per ``(sql, nargs, columns)`` of ``related``,
        a JSON array of its rows (each an array of ``columns``), in its order
        (``fold_reads == "json"``)."""
        raise NotImplementedError  # pragma: no cover

    def folded_value(self, kind: Kind) -> Converter | None:
        """How a value of ``kind`` inside a :meth:`fold_sql` array becomes ours."""
        raise NotImplementedError  # pragma: no cover

    def notify_sql(self) -> str:
        """SQL sending ``(channel, payload)`` to listeners (with ``supports_notify``)."""
        raise NotImplementedError  # pragma: no cover

    def listen(
        self, channel: str
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[str | None]]:
        """Deliver payloads sent on ``channel`` (with ``supports_notify``).

        The queue yields ``None`` after the listening connection was re-established:
        notifications sent meanwhile may have been missed.
        """
        raise NotImplementedError  # pragma: no cover

    def error_text(self, exc: BaseException) -> str:
        """What a driver error says, for a message naming the database: its first
        line, or ``connection refused`` when nothing listens at the address."""
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, ConnectionRefusedError):
                return "connection refused"
            seen = seen.__cause__
        return first_line(exc)

    def connection_error(self, exc: BaseException | None = None) -> ConnectionLostError:
        """A connection error naming the database without its credentials."""
        detail = f": {self.error_text(exc)}" if exc is not None else ""
        return ConnectionLostError(f"cannot reach database {self.url.masked}{detail}")

    def refused_error(self, exc: BaseException) -> DatabaseRefusedError:
        """The server refused the configured database or credentials (no such
        database, access denied): an error naming the database, never retried."""
        return DatabaseRefusedError(
            f"cannot use database {self.url.masked}: {self.error_text(exc)}"
        )

    def timeout_error(self, what: str, seconds: float | None = None) -> TimeoutError:
        """The :class:`~dataflow.errors.TimeoutError` of ``what`` ran out, naming the limit."""
        limit = {
            "connect": ("connect_timeout", self.connect_timeout),
            "acquire": ("pool_timeout", self.pool_timeout),
            "statement": ("command_timeout", self.command_timeout),
        }[what]
        spent = (limit[1] or 0.0) if seconds is None else seconds
        doing = {
            "connect": "connecting to",
            "acquire": "waiting for a free connection to",
            "statement": "waiting for a statement on",
        }[what]
        return TimeoutError(
            f"timed out after {spent:g} s {doing} {self.url.masked} ({limit[0]})",
            what=what,
            seconds=float(spent or 0),
        )
