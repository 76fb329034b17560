"""Helpers for the dataflow tests: a raw driver connection to the test database.

The raw connection bypasses DataFlow entirely, so tests can check what really
reached the database (tables, columns, indexes, rows) and can kill DataFlow's
pooled connections from the outside.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit


def dialect_of(url: str) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` for a test URL."""
    return url.split(":", 1)[0].split("+", 1)[0]


class RawDB:
    """A raw driver connection to the test database behind ``url``.

    SQL uses ``?`` placeholders on SQLite, ``$1`` on PostgreSQL and ``%s`` on MySQL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self._conn: Any = None

    async def open(self) -> RawDB:
        parts = urlsplit(self.url)
        if self.dialect == "sqlite":
            self._conn = sqlite3.connect(self.url[len("sqlite:///") :], isolation_level=None)
        elif self.dialect == "postgresql":
            import asyncpg

            self._conn = await asyncpg.connect(self.url, timeout=5)
        else:
            import asyncmy

            self._conn = await asyncmy.connect(
                host=parts.hostname,
                port=parts.port or 3306,
                user=parts.username or "root",
                password=parts.password or "",
                database=parts.path.lstrip("/"),
                autocommit=True,
                connect_timeout=5,
            )
        return self

    async def close(self) -> None:
        if self._conn is None:
            return
        if self.dialect == "postgresql":
            await self._conn.close()
        else:
            self._conn.close()
        self._conn = None

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of a query, as tuples."""
        if self.dialect == "sqlite":
            return [tuple(r) for r in self._conn.execute(sql, args).fetchall()]
        if self.dialect == "postgresql":
            return [tuple(r) for r in await self._conn.fetch(sql, *args)]
        async with self._conn.cursor() as cur:
            await cur.execute(sql, args)
            return [tuple(r) for r in await cur.fetchall()]

    async def execute(self, sql: str, *args: Any) -> None:
        """Run a statement."""
        if self.dialect == "postgresql":
            await self._conn.execute(sql, *args)
        else:
            await self.fetch(sql, *args)

    async def scalar(self, sql: str, *args: Any) -> Any:
        """The first column of the first row."""
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def columns(self, table: str) -> set[str]:
        """Column names of ``table`` (empty when it does not exist)."""
        if self.dialect == "sqlite":
            rows = await self.fetch("SELECT name FROM pragma_table_info(?)", table)
        elif self.dialect == "postgresql":
            rows = await self.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = $1",
                table,
            )
        else:
            rows = await self.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                table,
            )
        return {str(r[0]).lower() for r in rows}

    async def tables(self) -> set[str]:
        """Names of the tables in the test database."""
        if self.dialect == "sqlite":
            rows = await self.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        elif self.dialect == "postgresql":
            rows = await self.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        else:
            rows = await self.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        return {str(r[0]) for r in rows}

    async def index_columns(self, table: str) -> dict[str, tuple[str, ...]]:
        """Indexes of ``table`` (primary keys excluded) as ``{name: columns}``."""
        if self.dialect == "sqlite":
            result = {}
            for row in await self.fetch("SELECT name, origin FROM pragma_index_list(?)", table):
                if row[1] == "c":
                    cols = await self.fetch("SELECT name FROM pragma_index_info(?)", row[0])
                    result[row[0]] = tuple(c[0] for c in cols)
            return result
        if self.dialect == "postgresql":
            rows = await self.fetch(
                "SELECT i.relname, a.attname FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_class t ON t.oid = x.indrelid "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(x.indkey) "
                "WHERE t.relname = $1 AND NOT x.indisprimary "
                "ORDER BY i.relname, array_position(x.indkey::int2[], a.attnum)",
                table,
            )
        else:
            rows = await self.fetch(
                "SELECT index_name, column_name FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name = %s AND index_name <> 'PRIMARY' "
                "ORDER BY index_name, seq_in_index",
                table,
            )
        grouped: dict[str, tuple[str, ...]] = {}
        for name, col in rows:
            grouped[name] = (*grouped.get(name, ()), col)
        return grouped
