"""The :class:`DataFlow` handle: URL, models, connections, transactions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, overload

import sqlalchemy as sa

from dataflow.batch import WriteBatch
from dataflow.dialects import load_dialect
from dataflow.dialects.base import Backend, Connection
from dataflow.dialects.connection import DriverCall
from dataflow.errors import ConfigurationError, ConnectionLostError, TimeoutError, ValidationError
from dataflow.jsonvalues import describe
from dataflow.models import Index, build_model
from dataflow.nodes import Node, make_nodes
from dataflow.operations import ModelRef, ModelState, Operations, Statements
from dataflow.related import Related, get_with
from dataflow.schema import build_tables, ensure_tables
from dataflow.transactions import Savepoint, Transaction, TransactionScope
from dataflow.urls import parse_url

__all__ = ["DataFlow", "InMemoryDatabaseWarning", "Savepoint", "Transaction"]

T = TypeVar("T")
C = TypeVar("C", bound=type)

_IN_MEMORY = "sqlite:///:memory:"
_warned_in_memory = False  # the warning is given once per process


class InMemoryDatabaseWarning(UserWarning):
    """``DataFlow()`` was given no URL and ``$DATABASE_URL`` is not set: it uses an
    in-memory SQLite database whose data vanishes on ``close()`` and at exit.

    Pass a URL (``DataFlow("sqlite:///:memory:")`` to ask for memory on purpose)
    or set ``$DATABASE_URL`` to avoid it.
    """


def _default_url() -> str:
    """``$DATABASE_URL``, else in-memory SQLite (with a warning, once per process)."""
    global _warned_in_memory
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    if not _warned_in_memory:
        _warned_in_memory = True
        warnings.warn(
            "DataFlow() without a URL and without $DATABASE_URL uses an in-memory SQLite "
            "database: its data vanishes on close() and at exit (pass a URL, or "
            f"{_IN_MEMORY!r} to choose memory on purpose)",
            InMemoryDatabaseWarning,
            stacklevel=3,
        )
    return _IN_MEMORY


class DataFlow(Operations):
    """A zero-config async data layer over SQLite, PostgreSQL or MySQL/MariaDB.

    Args:
        url: Database URL. Which one is used: ``url`` when given, else
            ``$DATABASE_URL``, else an in-memory SQLite database whose data vanishes on
            ``close()`` and at exit (an :class:`InMemoryDatabaseWarning`, once per
            process; pass ``"sqlite:///:memory:"`` to choose it without one). The
            ``kaizen`` command picks ``--db``, else ``$KAIZEN_DATABASE_URL``, else
            ``$DATABASE_URL``, else ``sqlite:///kaizen.db``.
        **options: Connection options, also accepted as URL query parameters
            (a keyword wins): ``pool_size`` (default 10), ``connect_timeout``
            (seconds, 10), ``pool_timeout`` (seconds waiting for a free
            connection, 30), ``command_timeout`` (seconds per statement, off);
            SQLite: ``busy_timeout`` (5), ``synchronous`` (``full``);
            PostgreSQL: ``sslmode``, ``sslrootcert``, ``sslcert``, ``sslkey``,
            ``statement_cache_size``; MySQL: ``ssl_mode``, ``ssl_ca``,
            ``ssl_cert``, ``ssl_key``.

    Raises:
        ConfigurationError: A malformed URL, an unknown option or a bad value.

    Connecting is lazy: nothing touches the database before the first
    operation. The handle works from any event loop and thread (each loop has
    connections of its own); ``close()`` is idempotent.

    Example:
        >>> db = DataFlow("sqlite:///app.db")
        >>> @db.model
        ... class User:
        ...     id: str
        ...     name: str
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        raw = url or _default_url()
        if not isinstance(raw, str):
            raise ConfigurationError("the database URL must be a string")
        self._url = parse_url(raw)
        self.dialect = load_dialect(self._url, options)
        self._lock = threading.Lock()  # guards the per-loop maps, shared by threads
        # Bumped by close(): work begun before it must not land in the maps after it.
        self._generation = 0
        self._statements = Statements(self.dialect)
        self._metadata = sa.MetaData()
        self._states: dict[str, ModelState] = {}
        self._by_class: dict[type, ModelState] = {}
        self._ensured: set[str] = set()
        self._backends: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Backend] = (
            weakref.WeakKeyDictionary()
        )
        self._schema_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self.nodes: dict[str, Node] = {}

    # -- identity ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return self._url.masked

    @property
    def dialect_name(self) -> str:
        """``"sqlite"``, ``"postgresql"`` or ``"mysql"``."""
        return self.dialect.name

    def __repr__(self) -> str:
        return f"DataFlow({self._url.masked!r})"

    # -- models ------------------------------------------------------------

    @overload
    def model(self, cls: C, /) -> C: ...

    @overload
    def model(
        self,
        cls: None = None,
        /,
        *,
        table: str | None = ...,
        indexes: Sequence[Index] = ...,
        versioned: bool = ...,
    ) -> Callable[[C], C]: ...

    def model(
        self,
        cls: C | None = None,
        /,
        *,
        table: str | None = None,
        indexes: Sequence[Index] = (),
        versioned: bool = False,
    ) -> C | Callable[[C], C]:
        """Register an annotated class as a model (usable bare or with options).

        Args:
            cls: The class, when used as a bare ``@db.model``.
            table: Table name (default: snake_case of the class name).
            indexes: Indexes to create, e.g. ``[Index("status", "created_at")]``.
            versioned: Add a ``version`` column for :meth:`update_versioned`.

        Returns:
            The class itself, unchanged; its 11 nodes are in :attr:`nodes`.

        Raises:
            ConfigurationError: Bad field types, no ``id: str``, or a duplicate name.
        """

        def register(target: C) -> C:
            info = build_model(target, table=table, indexes=indexes, versioned=versioned)
            with self._lock:
                if info.name in self._states or info.table in {
                    s.model.table for s in self._states.values()
                }:
                    raise ConfigurationError(
                        f"model {info.name} (table {info.table}) is already registered"
                    )
                tables = build_tables(info, self.dialect, self._metadata)
                state = ModelState(info, tables, self.dialect, len(self._states))
                self._states[info.name] = state
                self._by_class[target] = state
                self.nodes.update(make_nodes(self, info.name))
            return target

        return register(cls) if cls is not None else register

    @property
    def models(self) -> dict[str, type]:
        """Registered model classes by name."""
        return {name: s.model.cls for name, s in self._states.items()}

    def node(self, name: str) -> Node:
        """The generated node called ``name`` (e.g. ``"UserCreateNode"``)."""
        node = self.nodes.get(name) if isinstance(name, str) else None
        if node is None:
            raise ValidationError(f"no node named {describe(name)}")
        return node

    def _state(self, model: ModelRef) -> ModelState:
        if isinstance(model, type):
            state = self._by_class.get(model)
        else:
            state = self._states.get(model) if isinstance(model, str) else None
        if state is None:
            name = model.__name__ if isinstance(model, type) else model
            raise ValidationError(f"{describe(name)} is not a registered model")
        return state

    # -- connections -------------------------------------------------------

    async def _backend(self) -> Backend:
        loop = asyncio.get_running_loop()
        backend = self._backends.get(loop)
        while backend is None:
            self._abandon_closed_loops()
            generation = self._generation
            opened = await self.dialect.open_backend()
            with self._lock:
                if generation == self._generation:  # no close() meanwhile
                    backend = self._backends.setdefault(loop, opened)
            if backend is not opened:
                await opened.close()
        return backend

    def _abandon_closed_loops(self) -> None:
        """Drop the connections of event loops that have been closed (e.g. an earlier
        ``asyncio.run()``): they cannot be used or closed the usual way any more."""
        with self._lock:
            closed = [(loop, b) for loop, b in self._backends.items() if loop.is_closed()]
            for loop, _ in closed:
                del self._backends[loop]
        for _, backend in closed:
            backend.abandon()

    async def initialize(self) -> None:
        """Create or extend the tables of every registered model now (else: on first use)."""
        await self._ensure(list(self._states.values()))

    async def _ensure(self, states: Sequence[ModelState]) -> None:
        missing = [s for s in states if s.name not in self._ensured]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            lock = self._schema_locks.get(loop)
            if lock is None:
                lock = self._schema_locks[loop] = asyncio.Lock()
        async with lock:
            missing = [s for s in states if s.name not in self._ensured]
            if not missing:
                return
            generation = self._generation
            backend = await self._backend()
            async with backend.transaction() as conn:
                await ensure_tables(conn, self.dialect, [s.tables for s in missing])
            with self._lock:
                if generation == self._generation:  # else: made in a database closed since
                    self._ensured.update(s.name for s in missing)

    async def _run(
        self,
        state: ModelState,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        write: bool,
        atomic: bool = False,
    ) -> T:
        if state.name not in self._ensured:
            await self._ensure([state])
        backend = await self._backend()
        try:
            return await backend.run(fn, atomic=atomic)
        except ConnectionLostError as exc:
            # A read after a dropped connection is retried once on a fresh one; a write
            # never is (it may have reached the database), nor anything that timed out.
            if write or isinstance(exc, TimeoutError):
                raise
        return await backend.run(fn, atomic=atomic)

    async def ping(self) -> None:
        """Check that the database answers (one trivial query).

        Raises:
            ConnectionLostError: It does not (TimeoutError: not in time).
        """

        async def one(conn: Connection) -> None:
            await conn.fetch("SELECT 1", [])

        await (await self._backend()).run(one, atomic=False)

    def on_driver_call(self, hook: Callable[[DriverCall], None]) -> Callable[[], None]:
        """Call ``hook`` after every call a connection of this handle makes to its
        driver (statement, batch script, begin/commit/rollback), with its SQL,
        arguments and row count; for tracing, statement counting and benchmarks.

        Returns:
            A function removing the hook. Hooks run on the calling task; one that
            raises fails the operation that made the call.
        """
        self.dialect.call_hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self.dialect.call_hooks.remove(hook)

        return remove

    async def get_with(self, model: ModelRef, id: str, **related: Related) -> dict[str, Any] | None:
        """The record with ``id`` and, under each keyword, its related records, in one
        round trip where the database allows (see :mod:`dataflow.related`).

        Example:
            >>> order = await db.get_with(
            ...     "Order", "o1", lines=Related("Line", {"order_id": "o1"}, order_by="seq")
            ... )
            >>> order["lines"]  # [{...}, ...], as db.select would return them

        Returns:
            None when there is no such record.
        """
        return await get_with(self, model, id, related)

    def batch(self) -> WriteBatch:
        """Several writes applied atomically in the fewest round trips (one on
        PostgreSQL and MySQL), each step optionally conditional on an earlier one.

        Example:
            >>> batch = db.batch()
            >>> moved = batch.update_where("Order", {"id": "o1", "state": "new"}, {"state": "paid"})
            >>> batch.insert("Payment", {"id": "p1", "order_id": "o1"}, when=moved)
            >>> paid = (await batch.run())[moved] == 1

        See :class:`~dataflow.batch.WriteBatch`.
        """
        return WriteBatch(self)

    def transaction(self) -> TransactionScope:
        """Run several operations atomically: committed on clean exit, else rolled back.

        Use it as ``async with db.transaction() as tx:``, and the yielded
        :class:`Transaction` (not the DataFlow) inside the block.

        An operation that fails inside the block once it reached the database
        (a duplicate key, a deadlock, a lost connection...) aborts the whole
        transaction, on every database: later operations raise
        :class:`~dataflow.errors.TransactionAbortedError`, and so does leaving
        the block normally (the caller caught the error); nothing is committed.
        Wrap operations that may fail in ``async with tx.savepoint():`` to
        undo only them and carry on.
        """
        return TransactionScope(self)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[str | None]]:
        """Receive notifications sent on ``channel`` (PostgreSQL only).

        The queue yields each payload, and ``None`` when the listening
        connection came back after a loss (a server restart, a failover):
        notifications sent while it was away were missed.

        Raises:
            ConfigurationError: The database has no notifications.
            ConnectionLostError: It cannot be reached now.
        """
        if not self.dialect.supports_notify:
            raise ConfigurationError(f"{self.dialect.name} has no notifications; poll instead")
        async with self.dialect.listen(channel) as queue:
            yield queue

    async def close(self) -> None:
        """Close every connection. Idempotent; the handle reconnects if used again.

        Connections of this event loop are closed now; those of other running
        loops (other threads) are closed on their own loop.
        """
        self._abandon_closed_loops()
        with self._lock:
            backends = list(self._backends.items())
            self._backends = weakref.WeakKeyDictionary()
            self._generation += 1
            self.dialect.retire()
            if self.dialect.volatile:  # an in-memory database is gone: tables again on reuse
                self._ensured.clear()
        current = asyncio.get_running_loop()
        for loop, backend in backends:
            if loop is current:
                await backend.close()
            elif loop.is_running():
                try:
                    asyncio.run_coroutine_threadsafe(backend.close(), loop)
                except RuntimeError:  # that loop closed meanwhile
                    backend.abandon()
            else:  # an idle loop would never run the close
                backend.abandon()
        await self.dialect.close()

    async def __aenter__(self) -> DataFlow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
