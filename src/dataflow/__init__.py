"""DataFlow: a zero-config async data layer for SQLite, PostgreSQL and MySQL/MariaDB."""

from dataflow.core import DataFlow, Transaction
from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    NotFoundError,
    SchemaError,
    ValidationError,
)
from dataflow.filters import escape_like
from dataflow.models import Index

__version__ = "0.1.0"

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLostError",
    "DataFlow",
    "DataFlowError",
    "DuplicateKeyError",
    "Index",
    "IntegrityError",
    "NotFoundError",
    "SchemaError",
    "Transaction",
    "ValidationError",
    "__version__",
    "escape_like",
]
