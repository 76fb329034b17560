"""The connection pool of the network databases, and the backend built on it.

The drivers' own pools reset every connection on release, costing a round trip
per operation. Our connections never carry session state between uses
(transactions always end, listeners get dedicated connections), so a release
only needs to know whether the connection broke.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dataflow.dialects.base import Backend, Dialect
from dataflow.dialects.connection import Connection, translate_error
from dataflow.errors import ConnectionLostError, DataFlowError

if TYPE_CHECKING:
    from dataflow.urls import DatabaseURL

__all__ = ["Pool", "PooledBackend", "PooledDialect"]

T = TypeVar("T")
C = TypeVar("C")


class Pool(Generic[C]):
    """A small LIFO connection pool bound to one event loop.

    Args:
        connect: Opens one connection (within its own time limit).
        close: Closes one connection.
        max_size: Most connections open at once.
        timeout: Seconds a caller waits for a free connection before
            :class:`~dataflow.errors.TimeoutError`; None waits for ever.
        on_timeout: Builds that error from the seconds waited.
        usable: Whether an idle connection still looks alive; dead ones are dropped.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None]],
        max_size: int,
        *,
        timeout: float | None = None,
        on_timeout: Callable[[float], Exception] | None = None,
        usable: Callable[[C], bool] | None = None,
    ) -> None:
        self._connect = connect
        self._close = close
        self._max = max_size
        self._timeout = timeout
        self._on_timeout = on_timeout or (
            lambda s: ConnectionLostError(f"no free connection after {s:g} s")
        )
        self._usable = usable
        self._idle: list[C] = []
        self._size = 0
        # Waiters in arrival order, each with its deadline (None: waits for ever).
        self._waiters: deque[tuple[asyncio.Future[C | None], float | None]] = deque()
        # One timer for all waiters, due at or before the earliest deadline among them:
        # a wait arms no timer of its own (see _expire).
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._closing: set[asyncio.Task[None]] = set()
        # Transactions: connection -> the task holding it, and how many each task holds.
        self._tx_conns: dict[C, asyncio.Task[Any]] = {}
        self._tx_tasks: dict[asyncio.Task[Any], int] = {}
        # Tasks holding a transaction that wait here (a task waits once at a time).
        self._waiting: set[asyncio.Task[Any]] = set()

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return self._size

    async def get(self, *, transaction: bool = False) -> C:
        """Take an idle connection, open a new one, or wait for one.

        Args:
            transaction: The caller holds the connection for a transaction
                (tracked to detect a wait that could never end).

        Raises:
            ConnectionLostError: The pool is closed, or connecting failed.
            TimeoutError: No connection became free within the pool's timeout.
            DataFlowError: Every connection is held by a transaction whose task
                is itself waiting here, the caller included: nobody could ever
                give one back (a ``db`` call inside ``async with db.transaction()``).
        """
        if self._idle and not self._closed:  # the fast path, without another coroutine
            conn = self._idle.pop()
            if self._usable is not None and not self._usable(conn):
                self._forget(conn)
                conn = await self._get()
        else:
            conn = await self._get()
        if transaction:
            task = asyncio.current_task()
            assert task is not None
            self._tx_conns[conn] = task
            self._tx_tasks[task] = self._tx_tasks.get(task, 0) + 1
        return conn

    async def _get(self) -> C:
        loop = asyncio.get_running_loop()
        deadline = None if self._timeout is None else loop.time() + self._timeout
        while True:
            if self._closed:
                raise ConnectionLostError("the database handle is closed")
            while self._idle:
                conn = self._idle.pop()
                if self._usable is None or self._usable(conn):
                    return conn
                self._forget(conn)
            if self._size < self._max:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake()
                    raise
            handed = await self._wait(loop, deadline)
            if handed is not None:
                return handed

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> C | None:
        """Wait for a connection handed over (or None: a slot opened up)."""
        task = asyncio.current_task() if self._tx_tasks else None
        if task is not None and task in self._tx_tasks:
            # Only a task holding a transaction can take part in a deadlock.
            self._check_deadlock(task)
            self._waiting.add(task)
        else:
            task = None
        waiter: asyncio.Future[C | None] = loop.create_future()
        self._waiters.append((waiter, deadline))
        if deadline is not None:
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._expire)
        try:
            return await waiter
        except BaseException:
            settled = waiter.done() and not waiter.cancelled() and waiter.exception() is None
            if settled:  # handed over just as the wait ended: pass it on to the next waiter
                handed = waiter.result()
                if handed is not None:
                    self.put(handed, broken=False)
                else:
                    self._wake()  # the free slot it was told of
            raise
        finally:
            if task is not None:
                self._waiting.discard(task)

    def _expire(self) -> None:
        """The timer is due: fail the waits past their deadline, re-arm for the next one.

        Waiters are served in order and share one timeout, so the timer mostly
        fires once per timeout, finding the waits it was armed for long served.
        """
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        kept: deque[tuple[asyncio.Future[C | None], float | None]] = deque()
        due: float | None = None
        for waiter, deadline in self._waiters:
            if waiter.done():
                continue
            if deadline is not None and deadline <= now:
                waiter.set_exception(self._on_timeout(self._timeout or 0.0))
                continue
            kept.append((waiter, deadline))
            if deadline is not None and (due is None or deadline < due):
                due = deadline
        self._waiters = kept
        if due is not None:
            self._timer = loop.call_at(due, self._expire)

    def _check_deadlock(self, task: asyncio.Task[Any]) -> None:
        stuck = self._tx_tasks[task] + sum(
            self._tx_tasks.get(t, 0) for t in self._waiting if t is not task
        )
        if stuck >= self._max:
            raise DataFlowError(
                f"every connection of the pool (pool_size={self._max}) is held by a "
                "transaction whose task waits for another connection, this one included: "
                "inside `async with db.transaction() as tx:` use tx, not db "
                "(or raise pool_size)"
            )

    def put(self, conn: C, *, broken: bool) -> None:
        """Return a connection; a broken one is closed and forgotten."""
        if self._tx_conns:
            self._release_transaction(conn)
        if broken or self._closed:
            self._forget(conn)
            self._wake()
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _release_transaction(self, conn: C) -> None:
        task = self._tx_conns.pop(conn, None)
        if task is not None:
            left = self._tx_tasks[task] - 1
            if left:
                self._tx_tasks[task] = left
            else:
                del self._tx_tasks[task]

    def _forget(self, conn: C) -> None:
        self._size -= 1
        self._close_later(conn)

    def _wake(self) -> None:
        """Let one waiter open a fresh connection in place of a lost one."""
        while self._waiters:
            waiter = self._waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(None)
                return

    def abandon(self, kill: Callable[[C], None]) -> None:
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
        for conn in idle:
            self._forget(conn)

    def _close_later(self, conn: C) -> None:
        task = asyncio.get_running_loop().create_task(self._safe_close(conn))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _safe_close(self, conn: C) -> None:
        with contextlib.suppress(Exception):
            await self._close(conn)

    async def close(self) -> None:
        """Close idle connections now and the borrowed ones when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        # At once: each close is bounded, a frozen server must not make them add up.
        await asyncio.gather(*(self._safe_close(conn) for conn in idle))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiters:
            waiter = self._waiters.popleft()[0]
            if not waiter.done():
                waiter.set_exception(ConnectionLostError("the database handle is closed"))


class PooledDialect(Dialect):
    """A dialect of a network database: its connections live in a :class:`Pool`."""

    def __init__(self, url: DatabaseURL, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        self.pool_size: int = options["pool_size"]

    @abstractmethod
    async def _open(self) -> Connection:
        """Open one connection (the caller bounds the time it takes)."""

    @abstractmethod
    async def _close(self, conn: Connection) -> None:
        """Close one connection."""

    @abstractmethod
    def _kill(self, conn: Connection) -> None:
        """Shut a connection down without its (closed) event loop."""

    async def connect(self) -> Connection:
        """Open one connection within ``connect_timeout``.

        Raises:
            TimeoutError: The server did not complete the handshake in time.
            ConnectionLostError: It refused or could not be reached.
            DataFlowError: It answered with an error (unknown database, bad password...).
        """
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await self._open()
        except DataFlowError:
            raise
        except TimeoutError:
            raise self.timeout_error("connect") from None
        except Exception as exc:
            err = translate_error(self, exc)
            raise (err if err is not None else self.connection_error(exc)) from exc

    async def open_backend(self) -> Backend:
        pool = Pool(
            self.connect,
            self._close,
            self.pool_size,
            timeout=self.pool_timeout,
            on_timeout=lambda s: self.timeout_error("acquire", s),
            usable=Connection.usable,
        )
        return PooledBackend(self, pool)


class PooledBackend(Backend):
    """A backend over :class:`Pool` for drivers with real network connections."""

    def __init__(self, dialect: PooledDialect, pool: Pool[Connection]) -> None:
        self.dialect = dialect
        self.pool = pool

    def _give_back(self, conn: Connection) -> None:
        self.pool.put(conn, broken=conn.broken)
        if conn.lost:  # the others are likely dead too
            self.pool.discard_idle()

    async def run(self, fn: Callable[[Connection], Awaitable[T]], *, atomic: bool) -> T:
        if atomic:
            return await self._run_atomic(fn)
        # The hot path: one statement on a pooled connection, without a context manager.
        conn: Connection = await self.pool.get()
        try:
            return await fn(conn)
        finally:
            self.pool.put(conn, broken=conn.broken)
            if conn.lost:
                self.pool.discard_idle()

    async def begin(self) -> Connection:
        conn: Connection = await self.pool.get(transaction=True)
        try:
            await conn.begin()
        except BaseException:
            self._give_back(conn)
            raise
        return conn

    async def end(self, conn: Connection, error: BaseException | None) -> None:
        try:
            if error is None:
                try:
                    await conn.commit()
                except BaseException:
                    # A COMMIT that failed may leave the transaction open (SQLite busy
                    # past its timeout, a disk error): end it before anyone reuses it.
                    if not conn.broken:
                        await self._rollback(conn)
                    raise
            elif not conn.broken:
                await self._rollback(conn)
        finally:
            self._give_back(conn)

    async def _rollback(self, conn: Connection) -> None:
        # Bounded: a rollback that does not come back is a connection we close,
        # which rolls the transaction back on the server just the same.
        limit = self.dialect.command_timeout or self.dialect.connect_timeout
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(conn.rollback())
        except Exception:  # ours, or the time limit: the connection is not to be trusted
            conn.broken = True
        except asyncio.CancelledError:
            conn.broken = True  # the shielded rollback may still be running on it
            raise

    def abandon(self) -> None:
        self.pool.abandon(self.dialect._kill)

    async def close(self) -> None:
        await self.pool.close()
