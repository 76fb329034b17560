"""DataFlow: a zero-config async data layer for SQLite, PostgreSQL and MySQL/MariaDB."""

from dataflow.core import DataFlow, InMemoryDatabaseWarning, Savepoint, Transaction
from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    NotFoundError,
    SchemaError,
    TimeoutError,
    TransactionAbortedError,
    ValidationError,
)
from dataflow.filters import escape_like
from dataflow.models import Index
from dataflow.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataFlow",
    "DataFlowError",
    "DatabaseRefusedError",
    "DuplicateKeyError",
    "InMemoryDatabaseWarning",
    "Index",
    "IntegrityError",
    "NotFoundError",
    "RetryPolicy",
    "Savepoint",
    "SchemaError",
    "TimeoutError",
    "Transaction",
    "TransactionAbortedError",
    "ValidationError",
    "__version__",
    "escape_like",
]
