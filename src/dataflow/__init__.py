"""DataFlow: a zero-config async data layer for SQLite, PostgreSQL and MySQL/MariaDB."""

from dataflow.batch import BatchResult, Step, WriteBatch
from dataflow.core import DataFlow, InMemoryDatabaseWarning, Savepoint, Transaction
from dataflow.dialects.connection import DriverCall
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
from dataflow.related import Related
from dataflow.retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "BatchResult",
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataFlow",
    "DataFlowError",
    "DatabaseRefusedError",
    "DriverCall",
    "DuplicateKeyError",
    "InMemoryDatabaseWarning",
    "Index",
    "IntegrityError",
    "NotFoundError",
    "Related",
    "RetryPolicy",
    "Savepoint",
    "SchemaError",
    "Step",
    "TimeoutError",
    "Transaction",
    "TransactionAbortedError",
    "ValidationError",
    "WriteBatch",
    "__version__",
    "escape_like",
]
