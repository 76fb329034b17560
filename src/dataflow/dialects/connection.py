"""The connection surface the core uses, and the one translation of driver errors.

Driver exceptions never leave a :class:`Connection`: each of its methods
translates them (:func:`translate_error`) and marks the connection broken when
its state is no longer known, so the rest of the library only ever sees errors
of our tree.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from dataflow.errors import (
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    TimeoutError,
)

if TYPE_CHECKING:
    from dataflow.dialects.base import Dialect

__all__ = ["Connection", "DriverCall", "Row", "first_line", "translate_error"]

Row = Sequence[Any]
T = TypeVar("T")


class DriverCall(NamedTuple):
    """One call a connection made to its driver, as :meth:`DataFlow.on_driver_call` hooks
    see it (after it succeeded)."""

    #: ``fetch``, ``execute``, ``executemany``, ``script`` (a write batch sent at
    #: once), ``results`` (queries sent at once), ``begin``, ``commit`` or ``rollback``.
    method: str
    sql: str
    #: The arguments (``executemany``: one tuple per row).
    args: tuple[Any, ...]
    #: Rows fetched (``results``: in all), rows matched (``script``: the sum of its
    #: parts'), or -1.
    result: int


class Connection(ABC):
    """One driver connection as the core uses it: positional arguments, rows as
    sequences, and only errors of our tree.

    Dialects implement the ``_``-prefixed raw methods, each returning an
    awaitable (often the driver's own coroutine, which saves a frame per
    statement) that raises only when awaited: the public methods translate
    what the awaitable raises. ``broken`` is set when a call failed in a way that leaves the
    connection's state unknown (lost, timed out, cancelled mid-statement); such
    a connection is never reused.
    """

    __slots__ = ("broken", "dialect", "lost", "raw")
    #: Whether a cancellation in the middle of a call leaves the connection unusable.
    cancel_breaks: ClassVar[bool] = True
    #: The statement :meth:`begin` sends.
    begin_sql: ClassVar[str] = "BEGIN"

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect
        self.broken = False
        self.lost = False

    @abstractmethod
    def _fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Row]]: ...

    @abstractmethod
    def _execute(self, sql: str, args: Sequence[Any]) -> Awaitable[int]: ...

    @abstractmethod
    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]: ...

    @abstractmethod
    def _begin(self) -> Awaitable[None]: ...

    @abstractmethod
    def _commit(self) -> Awaitable[None]: ...

    @abstractmethod
    def _rollback(self) -> Awaitable[None]: ...

    def usable(self) -> bool:
        """Whether an idle connection still looks alive (no round trip)."""
        return True

    def fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Row]]:
        """Run a query and return its rows."""
        call = self._guarded(self._fetch(sql, args))
        return self._observed("fetch", sql, args, call) if self.dialect.call_hooks else call

    def execute(self, sql: str, args: Sequence[Any]) -> Awaitable[int]:
        """Run a statement and return the number of rows it matched."""
        call = self._guarded(self._execute(sql, args))
        return self._observed("execute", sql, args, call) if self.dialect.call_hooks else call

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]:
        """Run one statement for many parameter rows."""
        call = self._guarded(self._executemany(sql, rows))
        if self.dialect.call_hooks:
            return self._observed("executemany", sql, [tuple(r) for r in rows], call)
        return call

    def script(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Any]]:
        """Run a batch script (:meth:`Dialect.batch_script`); return its result row."""
        call = self._guarded(self._script(sql, args))
        return self._observed("script", sql, args, call) if self.dialect.call_hooks else call

    def _script(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Any]]:
        raise NotImplementedError  # pragma: no cover - dialects with batch scripts

    def results(self, sql: str, args: Sequence[Any]) -> Awaitable[list[list[Row]]]:
        """Run a multi-statement script of queries; return each one's rows."""
        call = self._guarded(self._results(sql, args))
        return self._observed("results", sql, args, call) if self.dialect.call_hooks else call

    def _results(self, sql: str, args: Sequence[Any]) -> Awaitable[list[list[Row]]]:
        raise NotImplementedError  # pragma: no cover - dialects folding reads so

    def begin(self) -> Awaitable[None]:
        """Start a transaction."""
        call = self._guarded(self._begin())
        return (
            self._observed("begin", self.begin_sql, (), call) if self.dialect.call_hooks else call
        )

    def commit(self) -> Awaitable[None]:
        """Commit the transaction."""
        call = self._guarded(self._commit())
        return self._observed("commit", "COMMIT", (), call) if self.dialect.call_hooks else call

    def rollback(self) -> Awaitable[None]:
        """Roll the transaction back."""
        call = self._guarded(self._rollback())
        return self._observed("rollback", "ROLLBACK", (), call) if self.dialect.call_hooks else call

    async def _observed(self, method: str, sql: str, args: Sequence[Any], call: Awaitable[T]) -> T:
        """Await ``call``, then tell each hook of :meth:`DataFlow.on_driver_call`."""
        result: Any = await call
        if method == "fetch":
            size = len(result)
        elif method == "results":
            size = sum(len(rows) for rows in result)
        elif method == "script":
            size = sum(int(v) for v in result)
        else:
            size = result if isinstance(result, int) else -1
        done = DriverCall(method, sql, tuple(args), size)
        for hook in list(self.dialect.call_hooks):
            hook(done)
        return result  # type: ignore[no-any-return]

    async def _guarded(self, call: Awaitable[T]) -> T:
        """Await a raw call; whatever it raises leaves as an error of our tree."""
        try:
            return await call
        except BaseException as exc:
            err = self._failed(exc)
            if err is None:
                raise
            raise err from exc

    def _failed(self, exc: BaseException) -> DataFlowError | None:
        """Our error for ``exc`` (None: re-raise ``exc`` as it is); mark what broke."""
        if not isinstance(exc, Exception):  # cancelled, KeyboardInterrupt...: mid-statement
            self.broken = self.broken or self.cancel_breaks
            return None
        err = translate_error(self.dialect, exc)
        if err is None:
            # Not a database error: the driver itself failed (a protocol it could not
            # parse...). Its state is unknown, and the caller still gets our error.
            self.broken = True
            err = DataFlowError(
                f"unexpected failure of the {self.dialect.name} driver: "
                f"{type(exc).__name__}: {first_line(exc)}"
            )
            err.from_driver = True
        elif isinstance(err, ConnectionLostError):
            self.broken = True
            self.lost = self.lost or not isinstance(err, TimeoutError)
        elif self.dialect.breaks(exc):
            self.broken = True
        return None if err is exc else err


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def translate_error(dialect: Dialect, exc: BaseException) -> DataFlowError | None:
    """The one place driver errors become errors of our tree (None: not a driver error).

    Messages carry the driver's text (never the URL): drivers do not echo passwords.
    """
    if isinstance(exc, DataFlowError):
        return exc
    cls = dialect.classify(exc)
    if cls is None:
        return None
    statement_timeout = dialect.command_timeout is not None
    if cls is TimeoutError or (
        cls is ConnectionLostError and isinstance(exc, builtins.TimeoutError) and statement_timeout
    ):
        return dialect.timeout_error("statement")
    if cls is ConnectionLostError:
        return dialect.connection_error(exc)
    if cls is DatabaseRefusedError:
        return dialect.refused_error(exc)
    err = cls(first_line(exc))
    err.from_driver = True
    return err
