"""Transactions: one connection, committed on clean exit, aborted as a whole by a
failed operation, with savepoints for the parts that may fail.

On PostgreSQL a failed statement aborts its transaction (the server answers
COMMIT with ROLLBACK); SQLite and MySQL would keep the transaction and drop only
the statement, except for deadlocks, which MySQL answers by rolling everything
back. One rule for all three: an operation that fails inside the block aborts
the transaction, and the caller always hears of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from dataflow.dialects.base import Backend, Connection
from dataflow.errors import DataFlowError, TransactionAbortedError, ValidationError
from dataflow.operations import ModelRef, ModelState, Operations

if TYPE_CHECKING:
    from dataflow.core import DataFlow

__all__ = ["Savepoint", "Transaction", "TransactionScope"]

T = TypeVar("T")


class TransactionScope:
    """The ``async with`` of :meth:`DataFlow.transaction` (a class: it is on hot paths)."""

    __slots__ = ("_backend", "_db", "_tx")

    def __init__(self, db: DataFlow) -> None:
        self._db = db
        self._backend: Backend
        self._tx: Transaction

    async def __aenter__(self) -> Transaction:
        db = self._db
        if len(db._ensured) < len(db._states):
            await db._ensure(list(db._states.values()))
        backend = self._backend = await db._backend()
        self._tx = Transaction(db, await backend.begin())
        return self._tx

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        tx = self._tx
        tx._open = False
        if tx._busy:
            # Left while an operation still runs on the connection (started without
            # being awaited): nothing can be committed, and the connection is not reused.
            tx._conn.broken = True
            running = DataFlowError(
                "the transaction block was left while an operation on it was still running"
            )
            await self._backend.end(tx._conn, running)
            if exc is None:
                raise running
            return
        if exc is None and tx._failure is not None:
            await self._backend.end(tx._conn, tx._failure)
            raise tx._aborted() from tx._failure
        await self._backend.end(tx._conn, exc)


class Transaction(Operations):
    """Operations on one connection inside one transaction (see :meth:`DataFlow.transaction`)."""

    def __init__(self, db: DataFlow, conn: Connection) -> None:
        self._db = db
        self._conn = conn
        self.dialect = db.dialect
        self._statements = db._statements
        self._open = True
        #: The error that aborted the transaction, if one did.
        self._failure: BaseException | None = None
        self._depth = 0
        # One operation at a time: a connection runs one statement at a time.
        self._busy = False
        # Every model registered so far has its tables (the scope made sure).
        self._models = len(db._states)

    def _state(self, model: ModelRef) -> ModelState:
        return self._db._state(model)

    def _aborted(self) -> TransactionAbortedError:
        failure = self._failure
        return TransactionAbortedError(
            "the transaction was rolled back: an operation in it failed "
            f"({type(failure).__name__}: {failure}); nothing of it was committed"
        )

    def _usable(self) -> None:
        if not self._open:
            raise DataFlowError("the transaction has ended: use it only inside its block")
        if self._failure is not None:
            raise self._aborted() from self._failure
        if self._busy:
            raise DataFlowError(
                "a transaction runs one operation at a time: await each before the next "
                "(asyncio.gather needs a transaction per task)"
            )

    async def _run(
        self,
        state: ModelState,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        write: bool,
        atomic: bool = False,
    ) -> T:
        if self._busy or self._failure is not None or not self._open:
            self._usable()
        if state.seq >= self._models:
            raise ValidationError(f"model {state.name} was registered after the transaction began")
        self._busy = True
        try:
            return await fn(self._conn)
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._busy = False

    async def _guarded(self, call: Awaitable[T]) -> T:
        if self._busy:
            self._usable()
        self._busy = True
        try:
            return await call
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._busy = False

    async def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to listeners of ``channel`` when the transaction commits.

        A no-op on databases without notifications (their waiters poll).
        """
        self._usable()
        if self.dialect.supports_notify:
            await self._guarded(self._conn.execute(self.dialect.notify_sql(), [channel, payload]))

    def savepoint(self) -> Savepoint:
        """A nested block whose failure undoes only its own operations.

        ``async with tx.savepoint():`` — if an operation inside fails, the
        transaction is rolled back to where the block began and stays usable;
        the error propagates out of the block (catch it there). A block left
        normally after a failure inside it raises
        :class:`~dataflow.errors.TransactionAbortedError` (also undone). When the
        savepoint itself cannot be rolled back to (the connection was lost, MySQL
        rolled the whole transaction back after a deadlock), the transaction is
        aborted as a whole.
        """
        return Savepoint(self)


class Savepoint:
    """The ``async with`` of :meth:`Transaction.savepoint`."""

    __slots__ = ("_name", "_tx")

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._name = ""

    async def __aenter__(self) -> Transaction:
        tx = self._tx
        tx._usable()
        self._name = f"dataflow_sp{tx._depth}"
        await tx._guarded(tx._conn.execute(f"SAVEPOINT {self._name}", []))
        tx._depth += 1
        return tx

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        tx = self._tx
        tx._depth -= 1
        failure = tx._failure
        if exc is None and failure is None:
            await tx._guarded(tx._conn.execute(f"RELEASE SAVEPOINT {self._name}", []))
            return
        if not tx._conn.broken and tx._open and not tx._busy:
            try:
                await tx._conn.execute(f"ROLLBACK TO SAVEPOINT {self._name}", [])
                await tx._conn.execute(f"RELEASE SAVEPOINT {self._name}", [])
            except DataFlowError as lost:  # e.g. MySQL rolled everything back (a deadlock)
                tx._failure = tx._failure or lost
            else:
                tx._failure = None
        else:  # nothing to roll back to: the block's work cannot be undone alone
            tx._failure = tx._failure or exc or DataFlowError("the savepoint could not be undone")
        if tx._failure is not None:  # the transaction is lost as a whole
            if exc is None:
                raise tx._aborted() from tx._failure
            return
        if exc is None:
            assert failure is not None
            raise TransactionAbortedError(
                "an operation in the savepoint block failed and was undone "
                f"({type(failure).__name__}: {failure})"
            ) from failure
