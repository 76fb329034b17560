"""Dialects, one module per database, imported only when their URL is used."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dataflow.options import resolve_options

if TYPE_CHECKING:
    from dataflow.dialects.base import Dialect
    from dataflow.urls import DatabaseURL

__all__ = ["load_dialect"]

_MODULES = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}


def load_dialect(url: DatabaseURL, keywords: Mapping[str, Any]) -> Dialect:
    """Create the dialect for ``url`` (importing its module and driver lazily).

    Raises:
        ConfigurationError: An unknown option (in the URL's query or ``keywords``),
            a refused value, or a driver that is not installed.
    """
    module = importlib.import_module(f"dataflow.dialects.{_MODULES[url.family]}")
    cls: type[Dialect] = module.DIALECT
    options = resolve_options(cls.OPTIONS, url.query, keywords, url.family)
    return cls(url, options)
