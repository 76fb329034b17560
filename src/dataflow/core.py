"""The :class:`DataFlow` handle: URL, models, connections, transactions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, overload

import sqlalchemy as sa

from dataflow.dialects import load_dialect
from dataflow.dialects.base import Backend, Connection, translate_error
from dataflow.errors import ConfigurationError, ConnectionLostError, ValidationError
from dataflow.models import Index, build_model
from dataflow.nodes import Node, make_nodes
from dataflow.operations import ModelRef, ModelState, Operations, Statements
from dataflow.schema import build_tables, ensure_tables
from dataflow.urls import parse_url

__all__ = ["DataFlow", "Transaction"]

T = TypeVar("T")
C = TypeVar("C", bound=type)


class DataFlow(Operations):
    """A zero-config async data layer over SQLite, PostgreSQL or MySQL/MariaDB.

    Args:
        url: Database URL; defaults to ``$DATABASE_URL``, else in-memory SQLite.
        **options: ``pool_size`` (network databases, default 10),
            ``busy_timeout`` (SQLite, seconds, default 5), ``connect_timeout``
            (seconds, default 10).

    Connecting is lazy: nothing touches the database before the first
    operation. The handle works from any event loop; ``close()`` is idempotent.

    Example:
        >>> db = DataFlow("sqlite:///app.db")
        >>> @db.model
        ... class User:
        ...     id: str
        ...     name: str
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        raw = url or os.environ.get("DATABASE_URL") or "sqlite:///:memory:"
        if not isinstance(raw, str):
            raise ConfigurationError("the database URL must be a string")
        self._url = parse_url(raw)
        self.dialect = load_dialect(self._url, options)
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
            if info.name in self._states or info.table in {
                s.model.table for s in self._states.values()
            }:
                raise ConfigurationError(
                    f"model {info.name} (table {info.table}) is already registered"
                )
            tables = build_tables(info, self.dialect, self._metadata)
            state = ModelState(info, tables, self.dialect)
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
        try:
            return self.nodes[name]
        except KeyError:
            raise ValidationError(f"no node named {name!r}") from None

    def _state(self, model: ModelRef) -> ModelState:
        state = self._by_class.get(model) if isinstance(model, type) else self._states.get(model)
        if state is None:
            name = model.__name__ if isinstance(model, type) else model
            raise ValidationError(f"{name!r} is not a registered model")
        return state

    # -- connections -------------------------------------------------------

    async def _backend(self) -> Backend:
        loop = asyncio.get_running_loop()
        backend = self._backends.get(loop)
        if backend is None:
            self._abandon_closed_loops()
            backend = self._backends[loop] = await self.dialect.open_backend()
        return backend

    def _abandon_closed_loops(self) -> None:
        """Drop the connections of event loops that have been closed (e.g. an earlier
        ``asyncio.run()``): they cannot be used or closed the usual way any more."""
        for loop, backend in list(self._backends.items()):
            if loop.is_closed():
                backend.abandon()
                del self._backends[loop]

    async def initialize(self) -> None:
        """Create or extend the tables of every registered model now (else: on first use)."""
        await self._ensure(list(self._states.values()))

    async def _ensure(self, states: Sequence[ModelState]) -> None:
        missing = [s for s in states if s.name not in self._ensured]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        lock = self._schema_locks.get(loop)
        if lock is None:
            lock = self._schema_locks[loop] = asyncio.Lock()
        async with lock:
            missing = [s for s in states if s.name not in self._ensured]
            if not missing:
                return
            backend = await self._backend()
            try:
                async with backend.transaction() as conn:
                    await ensure_tables(conn, self.dialect, [s.tables for s in missing])
            except Exception as exc:
                raise self._translated(backend, exc) from exc
            self._ensured.update(s.name for s in missing)

    def _translated(self, backend: Backend, exc: Exception) -> Exception:
        err = translate_error(self.dialect, exc)
        if isinstance(err, ConnectionLostError):
            backend.discard_idle()
        return err if err is not None else exc

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
        for attempt in (0, 1):
            try:
                return await backend.run(fn, atomic=atomic)
            except Exception as exc:
                err = self._translated(backend, exc)
                # A read after a dropped connection is retried once on a fresh one;
                # a write never is: it may have reached the database.
                if attempt or write or not isinstance(err, ConnectionLostError):
                    if err is exc:
                        raise
                    raise err from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def ping(self) -> None:
        """Check that the database answers (one trivial query).

        Raises:
            ConnectionLostError: It does not.
        """
        backend = await self._backend()
        try:
            async with backend.acquire() as conn:
                await conn.fetch("SELECT 1", [])
        except Exception as exc:
            err = self._translated(backend, exc)
            if err is exc:
                raise
            raise err from exc

    def transaction(self) -> _TransactionScope:
        """Run several operations atomically: committed on clean exit, else rolled back.

        Use it as ``async with db.transaction() as tx:``, and the yielded
        :class:`Transaction` (not the DataFlow) inside the block.
        """
        return _TransactionScope(self)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        """Receive notifications sent on ``channel`` (PostgreSQL only).

        Raises:
            ConfigurationError: The database has no notifications.
        """
        if not self.dialect.supports_notify:
            raise ConfigurationError(f"{self.dialect.name} has no notifications; poll instead")
        async with self.dialect.listen(channel) as queue:
            yield queue

    async def close(self) -> None:
        """Close every connection. Idempotent; the handle reconnects if used again."""
        self._abandon_closed_loops()
        backends = list(self._backends.items())
        self._backends = weakref.WeakKeyDictionary()
        current = asyncio.get_running_loop()
        for loop, backend in backends:
            if loop is current:
                await backend.close()
        await self.dialect.close()
        # Tables are checked again on reuse: an in-memory SQLite database is gone now.
        self._ensured.clear()

    async def __aenter__(self) -> DataFlow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _TransactionScope:
    """The ``async with`` of :meth:`DataFlow.transaction` (a class: it is on hot paths)."""

    __slots__ = ("_backend", "_conn", "_db")

    def __init__(self, db: DataFlow) -> None:
        self._db = db

    async def __aenter__(self) -> Transaction:
        db = self._db
        if len(db._ensured) < len(db._states):
            await db._ensure(list(db._states.values()))
        backend = self._backend = await db._backend()
        try:
            self._conn = await backend.begin()
        except Exception as exc:
            err = db._translated(backend, exc)
            if err is exc:
                raise
            raise err from exc
        return Transaction(db, self._conn)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        try:
            await self._backend.end(self._conn, exc)
        except Exception as failure:
            err = self._db._translated(self._backend, failure)
            if err is failure:
                raise
            raise err from failure
        if isinstance(exc, Exception):
            err = self._db._translated(self._backend, exc)
            if err is not exc:
                raise err from exc


class Transaction(Operations):
    """Operations on one connection inside one transaction (see :meth:`DataFlow.transaction`)."""

    def __init__(self, db: DataFlow, conn: Connection) -> None:
        self._db = db
        self._conn = conn
        self.dialect = db.dialect
        self._statements = db._statements

    def _state(self, model: ModelRef) -> ModelState:
        return self._db._state(model)

    async def _run(
        self,
        state: ModelState,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        write: bool,
        atomic: bool = False,
    ) -> T:
        if state.name not in self._db._ensured:
            raise ValidationError(f"model {state.name} was registered after the transaction began")
        try:
            return await fn(self._conn)
        except Exception as exc:
            err = translate_error(self.dialect, exc)
            if err is None or err is exc:
                raise
            raise err from exc

    async def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to listeners of ``channel`` when the transaction commits.

        A no-op on databases without notifications (their waiters poll).
        """
        if self.dialect.supports_notify:
            await self._conn.execute(self.dialect.notify_sql(), [channel, payload])
