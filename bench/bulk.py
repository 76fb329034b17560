"""Bulk loading of generated rows with each database's fastest path.

PostgreSQL: binary ``COPY`` (asyncpg ``copy_records_to_table``); MySQL:
multi-row ``INSERT`` batches; SQLite: ``executemany`` in one transaction on a
plain ``sqlite3`` connection. Rows are dicts of Python values keyed by column;
they are converted with the model's own codec, so the loaded rows are exactly
what the storage would have written. Membership side tables (the indexed
approver lists on MySQL and SQLite) are filled from the same rows.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, DropIndex

from bench.targets import Target, connect_raw
from dataflow import DataFlow
from dataflow.models import Kind
from dataflow.values import dump_json

__all__ = ["REBUILD_ABOVE", "analyze", "bulk_load", "grow_table"]

#: Loads of more rows than this drop and rebuild the secondary indexes.
REBUILD_ABOVE = 50_000

_PG_BATCH = 50_000
_MYSQL_BATCH = 50_000  # rows per transaction
_MYSQL_STATEMENT = 5_000  # rows per INSERT statement
_SQLITE_BATCH = 50_000


def _batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        yield batch


def _column_encoder(db: DataFlow, kind: Kind) -> Callable[[Any], Any] | None:
    if kind is Kind.JSON:
        # Generators may hand over JSON text they serialized once for many rows.
        return lambda v: v if v is None or isinstance(v, str) else dump_json(v, "bulk row")
    enc = db.dialect.encoder(kind)
    return None if enc is None else (lambda v: None if v is None else enc(v))


def _encoder(db: DataFlow, model: str) -> tuple[str, list[str], Any, dict[str, str]]:
    """Table, columns, row encoder and side tables of ``model``.

    Generated rows are valid by construction, so the encoder skips the codec's
    per-value checks (they would triple the load time of a million rows).
    """
    st = db._state(model)
    columns = [c.name for c in st.table.columns]
    fields = st.model.fields
    encoders = [(c, _column_encoder(db, fields[c].kind)) for c in columns]

    def encode(row: dict[str, Any]) -> tuple[Any, ...]:
        get = row.get
        return tuple(get(c) if enc is None else enc(get(c)) for c, enc in encoders)

    sides = {f: side.name for f, side in st.tables.sides.items()}
    return st.table.name, columns, encode, sides


def _side_rows(rows: Sequence[dict[str, Any]], field: str) -> list[tuple[str, str]]:
    return [
        (r["id"], v)
        for r in rows
        for v in dict.fromkeys(dump_json(e, field) for e in (r.get(field) or ()))
    ]


def _quote(db: DataFlow, name: str) -> str:
    return str(db.dialect.sa_dialect.identifier_preparer.quote(name))


def _insert_head(db: DataFlow, table: str, columns: list[str]) -> str:
    # Identifiers come from the model's own table, quoted by the dialect.
    names = ", ".join(_quote(db, c) for c in columns)
    return f"INSERT INTO {_quote(db, table)} ({names}) VALUES "  # noqa: S608


async def _ddl(target: Target, conn: Any, sql: str) -> None:
    if target.family == "postgresql":
        await conn.execute(sql)
    elif target.family == "mysql":
        async with conn.cursor() as cur:
            await cur.execute(sql)
    else:
        conn.execute(sql)


def _indexes(db: DataFlow, model: str) -> list[sa.Index]:
    st = db._state(model)
    return [ix for t in (st.table, *st.tables.sides.values()) for ix in t.indexes]


async def bulk_load(
    db: DataFlow,
    target: Target,
    model: str,
    rows: Iterable[dict[str, Any]],
    *,
    rebuild_indexes: bool = False,
) -> float:
    """Insert ``rows`` into ``model``'s tables (created first); return the seconds taken.

    With ``rebuild_indexes`` the secondary indexes are dropped first and built
    again after the load (much faster than maintaining them row by row); the
    time includes the rebuild.
    """
    await db.initialize()
    table, columns, encode, sides = _encoder(db, model)
    t0 = time.perf_counter()
    conn = await connect_raw(
        target, {"postgresql": "asyncpg", "mysql": "asyncmy"}.get(target.family, "sqlite3")
    )
    dialect = db.dialect.sa_dialect
    indexes = _indexes(db, model) if rebuild_indexes else []
    try:
        for ix in indexes:
            await _ddl(target, conn, str(DropIndex(ix).compile(dialect=dialect)))
        await _load(db, target, conn, rows, table, columns, encode, sides)
        for ix in indexes:
            await _ddl(target, conn, str(CreateIndex(ix).compile(dialect=dialect)))
    finally:
        if target.family == "postgresql":
            await conn.close()
        else:
            conn.close()
    return time.perf_counter() - t0


async def _load(
    db: DataFlow,
    target: Target,
    conn: Any,
    rows: Iterable[dict[str, Any]],
    table: str,
    columns: list[str],
    encode: Callable[[dict[str, Any]], tuple[Any, ...]],
    sides: dict[str, str],
) -> None:
    batch_size = {"postgresql": _PG_BATCH, "mysql": _MYSQL_BATCH}.get(target.family, _SQLITE_BATCH)
    for batch in _batches(rows, batch_size):
        main = [encode(r) for r in batch]
        side = {name: _side_rows(batch, f) for f, name in sides.items()}
        if target.family == "postgresql":
            await conn.copy_records_to_table(table, records=main, columns=columns)
            for name, srows in side.items():
                await conn.copy_records_to_table(name, records=srows, columns=["owner_id", "value"])
        elif target.family == "mysql":
            await _mysql_insert(db, conn, table, columns, main)
            for name, srows in side.items():
                await _mysql_insert(db, conn, name, ["owner_id", "value"], srows)
        else:
            _sqlite_insert(db, conn, table, columns, main, side)


async def _mysql_insert(
    db: DataFlow, conn: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    head = _insert_head(db, table, columns)
    async with conn.cursor() as cur:
        await cur.execute("SET unique_checks = 0, foreign_key_checks = 0")
        await conn.begin()
        for chunk in _batches(rows, _MYSQL_STATEMENT):
            sql = head + ", ".join([one] * len(chunk))
            await cur.execute(sql, [v for r in chunk for v in r])
        await conn.commit()


def _sqlite_insert(
    db: DataFlow,
    conn: Any,
    table: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    side: dict[str, list[tuple[str, str]]],
) -> None:
    def sql(name: str, cols: list[str]) -> str:
        return _insert_head(db, name, cols) + "(" + ", ".join(["?"] * len(cols)) + ")"

    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(sql(table, columns), rows)
        for name, srows in side.items():
            conn.executemany(sql(name, ["owner_id", "value"]), srows)
    except BaseException:
        conn.rollback()
        raise
    conn.execute("COMMIT")


async def analyze(target: Target, tables: Sequence[str]) -> None:
    """Refresh planner statistics after a bulk load, as PostgreSQL/MySQL do on their own."""
    if target.family == "postgresql":
        conn = await connect_raw(target, "asyncpg")
        try:
            for t in tables:
                # VACUUM also sets the visibility map, which index-only scans need;
                # autovacuum does both after a large insert.
                await conn.execute(f'VACUUM ANALYZE "{t}"')
        finally:
            await conn.close()
    elif target.family == "mysql":
        conn = await connect_raw(target, "asyncmy")
        try:
            async with conn.cursor() as cur:
                for t in tables:
                    await cur.execute(f"ANALYZE TABLE `{t}`")
                    await cur.fetchall()
        finally:
            conn.close()
    # SQLite has no automatic statistics: leave it as an application would find it.


async def grow_table(
    db: DataFlow,
    target: Target,
    model: str,
    make_row: Callable[[int, Any], dict[str, Any]],
    start: int,
    rows: int,
    base: Any,
) -> float:
    """Bulk-load generated rows ``start..rows`` of ``model``, then refresh the planner's
    statistics of its tables; return the seconds the load took."""
    seconds = await bulk_load(
        db,
        target,
        model,
        (make_row(k, base) for k in range(start, rows)),
        rebuild_indexes=rows - start > REBUILD_ABOVE,
    )
    tables = db._state(model).tables
    await analyze(target, [tables.main.name, *(s.name for s in tables.sides.values())])
    return seconds
