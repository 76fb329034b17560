"""The single exception tree of DataFlow.

Every error raised by the library derives from :class:`DataFlowError`. Driver
errors are translated into this tree in one place
(:func:`dataflow.dialects.base.translate_errors`), always chained with
``raise ... from exc`` so the original cause stays inspectable.
"""

from __future__ import annotations

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataFlowError",
    "DuplicateKeyError",
    "IntegrityError",
    "NotFoundError",
    "SchemaError",
    "ValidationError",
]


class DataFlowError(Exception):
    """Root of every error raised by DataFlow and the packages built on it."""


class ConfigurationError(DataFlowError):
    """The URL, an option or a model declaration is invalid."""


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


class SchemaError(DataFlowError):
    """The stored schema cannot be brought in line with a model without losing data."""
