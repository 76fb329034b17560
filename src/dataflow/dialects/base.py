"""What every dialect provides, and the pieces the network dialects share.

A :class:`Dialect` is created from the URL, without connecting. It maps model
kinds to column types and Python values to driver values, builds the few
statements that differ between databases, classifies driver errors, and opens
a :class:`Backend` (connections bound to one event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dataflow.errors import ConnectionLostError, DataFlowError
from dataflow.models import Kind

if TYPE_CHECKING:
    import sqlalchemy as sa

    from dataflow.urls import DatabaseURL

__all__ = [
    "Backend",
    "Connection",
    "Converter",
    "Dialect",
    "Pool",
    "PooledDialect",
    "translate_error",
]

Converter = Callable[[Any], Any]
T = TypeVar("T")


class Connection(Protocol):
    """The driver connection surface the core uses. Args are positional."""

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        """Run a query and return its rows."""

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        """Run a statement and return the number of rows it matched."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many parameter rows."""


class Backend(ABC):
    """Connections to one database, usable from one event loop."""

    @abstractmethod
    def acquire(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """Borrow a connection in autocommit mode."""

    @abstractmethod
    async def begin(self) -> Any:
        """Borrow a connection and start a transaction on it."""

    @abstractmethod
    async def end(self, conn: Any, error: BaseException | None) -> None:
        """Commit (``error`` is None) or roll back, then give the connection back.

        Raises:
            Exception: The commit failed (the transaction is rolled back).
        """

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
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

    async def run(self, fn: Callable[[Any], Awaitable[T]], *, atomic: bool) -> T:
        """Run ``fn`` on a borrowed connection (inside a transaction when ``atomic``)."""
        if not atomic:
            async with self.acquire() as conn:
                return await fn(conn)
        conn = await self.begin()
        try:
            result = await fn(conn)
        except BaseException as exc:
            await self.end(conn, exc)
            raise
        await self.end(conn, None)
        return result

    def discard_idle(self) -> None:  # noqa: B027 - optional hook
        """Drop idle connections after a connection loss (they are likely dead too)."""

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
    #: Options ``DataFlow(url, **options)`` accepts for this dialect.
    OPTIONS: frozenset[str] = frozenset()

    def __init__(self, url: DatabaseURL, options: dict[str, Any]) -> None:
        self.url = url
        self.options = options

    @abstractmethod
    def column_type(self, kind: Kind, *, key: bool) -> Any:
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

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> Any:
        """INSERT ... ON CONFLICT (id) DO UPDATE, with one bind per column."""
        raise NotImplementedError  # pragma: no cover - every dialect overrides

    def json_merge(self, column: Any, doc: Any, paths: Sequence[Any]) -> Any:
        """Expression: JSON object ``column`` with the top-level keys of ``doc`` set.

        ``paths`` holds one bind per key, valued with :meth:`json_path`.
        """
        raise NotImplementedError  # pragma: no cover - every dialect overrides

    def json_contains(self, column: Any, element: Any) -> Any:
        """Native JSON-array membership test (only with ``native_membership_index``)."""
        raise NotImplementedError  # pragma: no cover

    def order_nullable(self, column: Any, desc: bool) -> list[Any]:
        """ORDER BY keys for a nullable column: NULL sorts as the largest value everywhere."""
        return [column.desc().nulls_first() if desc else column.asc().nulls_last()]

    def limit_delete(self, stmt: Any, table: sa.Table, where: Any, limit: Any) -> Any:
        """Restrict a DELETE to at most ``limit`` matching rows, in no particular order.

        No ORDER BY on purpose: it lets the database find the rows through the
        filter's index instead of walking the primary key.
        """
        import sqlalchemy as sa

        inner = sa.select(table.c.id).where(where).limit(limit).scalar_subquery()
        return stmt.where(table.c.id.in_(inner))

    def membership_index(self, table: sa.Table, column: str, name: str) -> Any:
        """Declare a native membership index (only with ``native_membership_index``)."""
        raise NotImplementedError  # pragma: no cover

    def membership_value(self, element_json: str) -> Any:
        """Driver value compared by :meth:`json_contains` for one JSON-encoded element."""
        return element_json

    def json_path(self, key: str) -> str:
        """Path of a top-level JSON object key, as :meth:`json_merge` expects it."""
        escaped = key.replace("\\", "\\\\").replace('"', '\\"')
        return f'$."{escaped}"'

    def kind_of(self, db_type: str) -> Kind | None:
        """The field kind a stored column type holds, or None when unsure."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the dialect holds beyond its backends."""

    def notify_sql(self) -> str:
        """SQL sending ``(channel, payload)`` to listeners (with ``supports_notify``)."""
        raise NotImplementedError  # pragma: no cover

    def listen(self, channel: str) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[str]]:
        """Dedicated listening connection delivering payloads (with ``supports_notify``)."""
        raise NotImplementedError  # pragma: no cover

    def connection_error(self, exc: BaseException | None = None) -> ConnectionLostError:
        """A connection error naming the database without its credentials."""
        detail = f": {type(exc).__name__}" if exc is not None else ""
        return ConnectionLostError(f"cannot reach database {self.url.masked}{detail}")


class Pool:
    """A small LIFO connection pool bound to one event loop.

    The drivers' own pools reset every connection on release, costing a round
    trip per operation. Our connections never carry session state between uses
    (transactions always end, listeners get dedicated connections), so release
    only needs to know whether the connection broke.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        close: Callable[[Any], Awaitable[None]],
        max_size: int,
    ) -> None:
        self._connect = connect
        self._close = close
        self._max = max_size
        self._idle: list[Any] = []
        self._size = 0
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self) -> Any:
        """Take an idle connection, open a new one, or wait for one."""
        if self._closed:
            raise ConnectionLostError("the database handle is closed")
        if self._idle:
            return self._idle.pop()
        if self._size < self._max:
            self._size += 1
            try:
                return await self._connect()
            except BaseException:
                self._size -= 1
                self._wake()
                raise
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self.put(waiter.result(), broken=False)
            raise
        return conn if conn is not None else await self.get()

    def put(self, conn: Any, *, broken: bool) -> None:
        """Return a connection; a broken one is closed and forgotten."""
        if broken or self._closed:
            self._size -= 1
            self._close_later(conn)
            self._wake()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _wake(self) -> None:
        """Let one waiter open a fresh connection in place of a lost one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def abandon(self, kill: Callable[[Any], None]) -> None:
        """Kill every idle connection synchronously (their event loop is closed)."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for conn in idle:
            with contextlib.suppress(Exception):
                kill(conn)

    def discard_idle(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for conn in idle:
            self._close_later(conn)

    def _close_later(self, conn: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._safe_close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _safe_close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await self._close(conn)

    async def close(self) -> None:
        """Close idle connections now and the borrowed ones when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for conn in idle:
            await self._safe_close(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionLostError("the database handle is closed"))


class PooledDialect(Dialect):
    """A dialect of a network database: its connections live in a :class:`Pool`."""

    OPTIONS = frozenset({"pool_size", "connect_timeout"})

    def __init__(self, url: DatabaseURL, options: dict[str, Any]) -> None:
        super().__init__(url, options)
        self.pool_size = int(options.get("pool_size", 10))
        self.connect_timeout = float(options.get("connect_timeout", 10))

    @abstractmethod
    async def _open(self) -> Any:
        """Open one connection (a :class:`Connection` with begin/commit/rollback)."""

    @abstractmethod
    async def _close(self, conn: Any) -> None:
        """Close one connection."""

    @abstractmethod
    def _is_lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the connection is gone."""

    @abstractmethod
    def _kill(self, conn: Any) -> None:
        """Shut a connection down without its (closed) event loop."""

    async def open_backend(self) -> Backend:
        pool = Pool(self._open, self._close, self.pool_size)
        return PooledBackend(pool, self._is_lost, self._kill)


class PooledBackend(Backend):
    """A backend over :class:`Pool` for drivers with real network connections."""

    def __init__(
        self,
        pool: Pool,
        is_lost: Callable[[BaseException], bool],
        kill: Callable[[Any], None],
    ) -> None:
        self.pool = pool
        self._is_lost = is_lost
        self._kill = kill

    async def run(self, fn: Callable[[Any], Awaitable[T]], *, atomic: bool) -> T:
        if atomic:
            return await super().run(fn, atomic=True)
        # The hot path: one statement on a pooled connection, without a context manager.
        conn = await self.pool.get()
        broken = False
        try:
            return await fn(conn)
        except BaseException as exc:
            broken = self._broken(exc)
            raise
        finally:
            self.pool.put(conn, broken=broken)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Any]:
        conn = await self.pool.get()
        broken = False
        try:
            yield conn
        except BaseException as exc:
            broken = self._broken(exc)
            raise
        finally:
            self.pool.put(conn, broken=broken)

    def _broken(self, exc: BaseException) -> bool:
        # A cancelled statement leaves the connection in an unknown state.
        return self._is_lost(exc) or isinstance(exc, asyncio.CancelledError)

    async def begin(self) -> Any:
        conn = await self.pool.get()
        try:
            await conn.begin()
        except BaseException as exc:
            self.pool.put(conn, broken=self._broken(exc))
            raise
        return conn

    async def end(self, conn: Any, error: BaseException | None) -> None:
        broken = error is not None and self._broken(error)
        try:
            if error is None:
                try:
                    await conn.commit()
                except BaseException as exc:
                    broken = self._broken(exc)
                    raise
            elif not broken:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.rollback())
        finally:
            self.pool.put(conn, broken=broken)

    def discard_idle(self) -> None:
        self.pool.discard_idle()

    def abandon(self) -> None:
        self.pool.abandon(self._kill)

    async def close(self) -> None:
        await self.pool.close()


def translate_error(dialect: Dialect, exc: BaseException) -> DataFlowError | None:
    """The one place driver errors become errors of our tree (None: not a driver error).

    Messages carry the driver's text (never the URL): drivers do not echo passwords.
    """
    if isinstance(exc, DataFlowError):
        return exc
    cls = dialect.classify(exc)
    if cls is None:
        return None
    if cls is ConnectionLostError:
        return dialect.connection_error(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return cls(message)
