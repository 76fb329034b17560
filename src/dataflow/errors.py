"""The single exception tree of DataFlow.

Every error raised by the library derives from :class:`DataFlowError`. Driver
errors are translated into this tree in one place
(:func:`dataflow.dialects.connection.translate_error`, called by
:class:`dataflow.dialects.connection.Connection` and when connecting), always chained with
``raise ... from exc`` so the original cause stays inspectable.
"""

from __future__ import annotations

import builtins

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataFlowError",
    "DatabaseRefusedError",
    "DuplicateKeyError",
    "IntegrityError",
    "NotFoundError",
    "SchemaError",
    "TimeoutError",
    "TransactionAbortedError",
    "ValidationError",
]


class DataFlowError(Exception):
    """Root of every error raised by DataFlow and the packages built on it."""

    #: True when the message is the database driver's own text (translated, not ours).
    from_driver: bool = False


class ConfigurationError(DataFlowError):
    """The URL, an option or a model declaration is invalid."""


class DatabaseRefusedError(ConfigurationError):
    """The server answered but refused the configured database or credentials (no
    such database, access denied), or a command that only reads found no SQLite file.

    Trying again cannot help until the configuration changes, so nothing retries it
    (neither :class:`~dataflow.RetryPolicy` nor the one retry of a read after a
    lost connection). The message names the database without its password.
    """


class ValidationError(DataFlowError, ValueError):
    """Input was rejected before anything was written (unknown field, bad value...)."""


class NotFoundError(DataFlowError, LookupError):
    """A record that must exist does not."""


class IntegrityError(DataFlowError):
    """The database refused a write because of a constraint."""


class DuplicateKeyError(IntegrityError):
    """A record with the same primary or unique key already exists."""


class ConcurrencyError(DataFlowError):
    """A concurrent writer won: an optimistic version check failed or a lock timed out."""


class ConnectionLostError(DataFlowError):
    """The database could not be reached, or the connection dropped mid-operation.

    Writes are never retried automatically after this error: the caller cannot
    know whether the statement reached the database.
    """


class TimeoutError(ConnectionLostError, builtins.TimeoutError):
    """A database call did not finish in time: connecting, waiting for a pooled
    connection, or one statement (``connect_timeout``, ``pool_timeout``,
    ``command_timeout``).

    Also a built-in :class:`TimeoutError`. After a statement timeout the
    connection is discarded; like any :class:`ConnectionLostError`, a write that
    timed out may or may not have been applied.

    Attributes:
        what: ``"connect"``, ``"acquire"`` or ``"statement"``.
        seconds: The limit that ran out.
    """

    def __init__(self, message: str, *, what: str, seconds: float) -> None:
        super().__init__(message)
        self.what = what
        self.seconds = seconds


class TransactionAbortedError(DataFlowError):
    """An operation inside ``async with db.transaction()`` failed after the caller
    caught its error.

    Raised by every later operation in the block and when the block is left
    without an exception: the transaction was rolled back as a whole, nothing of
    it was committed. Use ``tx.savepoint()`` around operations whose failure the
    transaction should survive; a savepoint block left normally after a failure
    inside it raises this error too, with only the block undone.
    """


class SchemaError(DataFlowError):
    """The stored schema cannot be brought in line with a model without losing data."""
