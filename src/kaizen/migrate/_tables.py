"""The legacy tables as the migration sees them: found, paged and renamed through
SQLAlchemy Core statements run on connections of the DataFlow's own dialect.

Nothing here goes through a DataFlow model: a model would create or extend the
tables it reads (and refuse the legacy ones), and a dry run must write nothing.
Statements are SQLAlchemy Core, compiled for the dialect with bound parameters;
the stored columns come from the dialect's own catalogue query.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa

from dataflow import DataFlow
from dataflow.dialects.base import Backend, Connection

__all__ = ["Tables", "open_tables"]

Row = dict[str, Any]


class Tables:
    """Catalogue, reads and renames on one database (a backend of its own)."""

    def __init__(self, db: DataFlow, backend: Backend) -> None:
        self._dialect = db.dialect
        self._backend = backend

    def _sql(self, stmt: sa.ClauseElement) -> tuple[str, list[Any]]:
        compiled = stmt.compile(
            dialect=self._dialect.sa_dialect, compile_kwargs={"render_postcompile": True}
        )
        names = getattr(compiled, "positiontup", None) or []
        return str(compiled), [compiled.params[n] for n in names]

    async def _fetch(self, stmt: sa.ClauseElement) -> list[Sequence[Any]]:
        sql, args = self._sql(stmt)

        async def fetch(conn: Connection) -> list[Sequence[Any]]:
            return await conn.fetch(sql, args)

        return await self._backend.run(fetch, atomic=False)

    async def columns(self, table: str) -> set[str] | None:
        """The lowercase column names of ``table``, or None when there is no such table."""

        async def read(conn: Connection) -> dict[str, str] | None:
            return await self._dialect.table_columns(conn, table)

        found = await self._backend.run(read, atomic=False)
        return None if found is None else set(found)

    @staticmethod
    def _table(name: str, columns: Sequence[str]) -> sa.Table:
        return sa.Table(name, sa.MetaData(), *(sa.Column(c, sa.Text()) for c in columns))

    async def page(
        self, table: str, columns: Sequence[str], after: Any, limit: int
    ) -> tuple[list[Row], Any]:
        """The rows of the next ``limit`` distinct ids after ``after`` (None: the first),
        in id order, every row of an id included (a legacy table may lack its key).

        Returns:
            The rows, and the last id of the page (None when the table is done).
        """
        t = self._table(table, columns)
        ids = sa.select(t.c.id).distinct().where(t.c.id.is_not(None))
        if after is not None:
            ids = ids.where(t.c.id > after)
        keys = [r[0] for r in await self._fetch(ids.order_by(t.c.id).limit(limit))]
        if not keys:
            return [], None
        found = await self._fetch(sa.select(t).where(t.c.id.in_(keys)).order_by(t.c.id))
        rows = [dict(zip(columns, r, strict=True)) for r in found]
        return rows, keys[-1] if len(keys) == limit else None

    async def count_null_ids(self, table: str) -> int:
        """How many rows of ``table`` have no id (SQLite lets a TEXT key be NULL)."""
        t = self._table(table, ["id"])
        stmt = sa.select(sa.func.count()).select_from(t).where(t.c.id.is_(None))
        return int((await self._fetch(stmt))[0][0])

    async def present(self, table: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are rows of ``table``."""
        if not ids:
            return set()
        t = self._table(table, ["id"])
        return {r[0] for r in await self._fetch(sa.select(t.c.id).where(t.c.id.in_(ids)))}

    async def rename(self, old: str, new: str) -> None:
        """Rename table ``old`` to ``new`` (one statement, the same on every database)."""
        quote = self._dialect.sa_dialect.identifier_preparer.quote
        sql = f"ALTER TABLE {quote(old)} RENAME TO {quote(new)}"

        async def run(conn: Connection) -> None:
            await conn.execute(sql, [])

        await self._backend.run(run, atomic=True)


@contextlib.asynccontextmanager
async def open_tables(db: DataFlow) -> AsyncIterator[Tables]:
    """:class:`Tables` on connections of ``db``'s dialect, closed on exit."""
    backend = await db.dialect.open_backend()
    try:
        yield Tables(db, backend)
    finally:
        await backend.close()
