"""Tables for models: building them, and creating or evolving them safely.

Schema setup runs once per model and process, under a cross-process lock that
each dialect provides, so two processes starting at the same moment do not
race. Where that lock is not cluster-wide (MariaDB Galera: ``GET_LOCK`` is per
node), DDL that a concurrent creator already applied is tolerated instead
(:meth:`~dataflow.dialects.base.Dialect.run_ddl`).

A stored table is only ever extended: a new ``Optional`` field adds its column;
a change that would lose data (a type change, a new required field) is refused
with :class:`~dataflow.errors.SchemaError`. Every applied change bumps the
table's version in ``dataflow_schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateColumn, CreateIndex, CreateTable

from dataflow.errors import DuplicateKeyError, SchemaError
from dataflow.models import Kind, ModelInfo
from dataflow.values import utcnow

if TYPE_CHECKING:
    from dataflow.dialects.base import Connection, Dialect

__all__ = ["ModelTables", "build_tables", "ensure_tables"]

_KEY_LEN = 255


@dataclass
class ModelTables:
    """The SQLAlchemy tables of one model: its own and its membership side tables."""

    model: ModelInfo
    main: sa.Table
    sides: dict[str, sa.Table] = field(default_factory=dict)
    native_membership: tuple[str, ...] = ()


def _index_name(table: str, fields: tuple[str, ...], suffix: str = "") -> str:
    return f"ix_{table}_{'_'.join(fields)}{suffix}"[:60]


def build_tables(model: ModelInfo, dialect: Dialect, metadata: sa.MetaData) -> ModelTables:
    """Build the tables of ``model`` for ``dialect``."""
    keyed = model.keyed_fields
    columns = [
        sa.Column(
            f.name,
            dialect.column_type(f.kind, key=f.name in keyed),
            primary_key=f.name == "id",
            nullable=f.nullable,
        )
        for f in model.fields.values()
    ]
    main = sa.Table(model.table, metadata, *columns)
    native: list[str] = []
    for idx in model.indexes:
        name = idx.name or _index_name(model.table, idx.fields)
        if idx.membership and dialect.native_membership_index:
            native.append(idx.fields[0])
            dialect.membership_index(main, idx.fields[0], name)
        elif not idx.membership:
            sa.Index(name, *(main.c[n] for n in idx.fields), unique=idx.unique)
    tables = ModelTables(model, main, native_membership=tuple(native))
    for name in model.membership:
        if name not in native:
            tables.sides[name] = _side_table(model, name, dialect, metadata)
    return tables


def _side_table(model: ModelInfo, name: str, dialect: Dialect, metadata: sa.MetaData) -> sa.Table:
    key = dialect.column_type(Kind.STR, key=True)
    side = sa.Table(
        model.side_table(name),
        metadata,
        sa.Column(
            "owner_id",
            key,
            sa.ForeignKey(f"{model.table}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("value", key, primary_key=True),
    )
    sa.Index(_index_name(side.name, ("value", "owner_id")), side.c.value, side.c.owner_id)
    return side


async def ensure_tables(conn: Connection, dialect: Dialect, all_tables: list[ModelTables]) -> None:
    """Create or extend the tables of the given models (inside ``conn``'s transaction)."""
    async with dialect.schema_lock(conn):
        await _ensure_version_table(conn, dialect)
        # Check every table before changing any: MySQL commits each DDL statement,
        # so a refusal after a first ALTER would leave a half-applied change.
        plans = [
            (table, await _plan(conn, dialect, table, tables.model))
            for tables in all_tables
            for table in (tables.main, *tables.sides.values())
        ]
        for table, missing in plans:
            if await _apply(conn, dialect, table, missing):
                await _bump_version(conn, dialect, table.name)


_VERSIONS = sa.Table(
    "dataflow_schema",
    sa.MetaData(),
    sa.Column("table_name", sa.String(_KEY_LEN), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)


def _sql(dialect: Dialect, stmt: Any) -> tuple[str, list[Any]]:
    compiled = stmt.compile(dialect=dialect.sa_dialect)
    names = getattr(compiled, "positiontup", None) or []
    return str(compiled), [compiled.params[n] for n in names]


async def _ensure_version_table(conn: Connection, dialect: Dialect) -> None:
    if await dialect.table_columns(conn, _VERSIONS.name) is None:
        await dialect.run_ddl(conn, *_sql(dialect, CreateTable(_VERSIONS)))


async def _bump_version(conn: Connection, dialect: Dialect, table: str) -> None:
    now = utcnow().isoformat()
    bump = _sql(
        dialect,
        _VERSIONS.update()
        .where(_VERSIONS.c.table_name == table)
        .values(version=_VERSIONS.c.version + 1, updated_at=now),
    )
    if await conn.execute(*bump):
        return
    try:
        await conn.execute(
            *_sql(dialect, _VERSIONS.insert().values(table_name=table, version=1, updated_at=now))
        )
    except DuplicateKeyError:
        # Only where the schema lock does not reach every writer (Galera: GET_LOCK
        # is per node, and DDL commits at once): another node created it meanwhile.
        await conn.execute(*bump)


async def _plan(
    conn: Connection, dialect: Dialect, table: sa.Table, model: ModelInfo
) -> list[sa.Column[Any]] | None:
    """Columns to add to ``table`` (None: create it); SchemaError if that would lose data."""
    stored = await dialect.table_columns(conn, table.name)
    if stored is None:
        return None
    missing = []
    for column in table.columns:
        db_type = stored.get(column.name.lower())
        if db_type is None:
            _check_addable(table.name, column)
            missing.append(column)
            continue
        expected = model.fields[column.name].kind if column.name in model.fields else Kind.STR
        found = dialect.kind_of(db_type)
        if found is not None and found is not expected:
            raise SchemaError(
                f"column {table.name}.{column.name} is stored as {db_type!r} but the model "
                f"declares {expected.value}; changing its type could lose data, "
                "migrate it by hand or use a new field name"
            )
    return missing


async def _apply(
    conn: Connection, dialect: Dialect, table: sa.Table, missing: list[sa.Column[Any]] | None
) -> bool:
    """Create ``table`` or add its ``missing`` columns; return whether anything changed."""
    if missing is None:
        await dialect.run_ddl(conn, *_sql(dialect, CreateTable(table)))
        for index in table.indexes:
            await dialect.run_ddl(conn, *_sql(dialect, CreateIndex(index)))
        return True
    for column in missing:
        ddl = CreateColumn(column).compile(dialect=dialect.sa_dialect)
        await dialect.run_ddl(
            conn, f"ALTER TABLE {_quote(dialect, table.name)} ADD COLUMN {ddl}", []
        )
    existing = await dialect.index_names(conn, table.name)
    created = False
    for index in table.indexes:
        if str(index.name).lower() not in existing:
            await dialect.prepare_index(conn, table, index)
            await dialect.run_ddl(conn, *_sql(dialect, CreateIndex(index)))
            created = True
    return bool(missing) or created


def _check_addable(table: str, column: sa.Column[Any]) -> None:
    if not column.nullable:
        raise SchemaError(
            f"cannot add required column {table}.{column.name} to an existing table: "
            "declare it Optional[...] (existing rows have no value for it)"
        )


def _quote(dialect: Dialect, name: str) -> str:
    return str(dialect.sa_dialect.identifier_preparer.quote(name))
