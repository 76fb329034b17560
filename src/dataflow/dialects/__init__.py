"""Dialects, one module per database, imported only when their URL is used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dataflow.errors import ConfigurationError

if TYPE_CHECKING:
    from dataflow.dialects.base import Dialect
    from dataflow.urls import DatabaseURL

__all__ = ["load_dialect"]

_MODULES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}


def load_dialect(url: DatabaseURL, options: dict[str, Any]) -> Dialect:
    """Create the dialect for ``url`` (importing its module and driver lazily)."""
    module = importlib.import_module(f"dataflow.dialects.{_MODULES[url.family]}")
    dialect: Dialect = module.DIALECT(url, options)
    unknown = set(options) - dialect.OPTIONS
    if unknown:
        raise ConfigurationError(
            f"unknown DataFlow option(s) for {url.family}: {', '.join(sorted(unknown))}"
        )
    return dialect
