"""A record and the records related to it, read in one round trip.

``await db.get_with("Order", "o1", lines=Related("Line", {"order_id": "o1"}, "seq"))``
returns the order's record with ``"lines"``: the matching records, in order. How
the reads are folded is the dialect's choice (``fold_reads``): PostgreSQL
aggregates each related query into a JSON column of the main one (one
statement), MySQL/MariaDB sends them as one multi-statement script; SQLite, in
process, runs one query after the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.dialects.base import Connection
from dataflow.errors import ValidationError
from dataflow.statements import Filter, ModelRef, ModelState, OrderBy, check_count, order_keys

if TYPE_CHECKING:
    from dataflow.core import DataFlow

__all__ = ["Related", "get_with"]


@dataclass(frozen=True, slots=True)
class Related:
    """Records of ``model`` matching ``filter``, as :meth:`DataFlow.select` returns them."""

    model: ModelRef
    filter: Filter
    order_by: OrderBy = None
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    st: ModelState
    sql: str
    args: list[Any]


def _plans(db: DataFlow, related: Mapping[str, Related]) -> dict[str, _Plan]:
    plans = {}
    for name, rel in related.items():
        if not isinstance(rel, Related):
            raise ValidationError(f"related {name!r} must be a Related(model, filter, ...)")
        if rel.limit is not None:
            check_count("limit", rel.limit)
        st = db._state(rel.model)
        ordinal = db.dialect.fold_reads == "json"
        c, args = db._select_plan(
            st, rel.filter, order_keys(st, rel.order_by), rel.limit, 0, ordinal=ordinal
        )
        plans[name] = _Plan(st, c.sql, args)
    return plans


async def get_with(
    db: DataFlow, model: ModelRef, id: str, related: Mapping[str, Related]
) -> dict[str, Any] | None:
    """See :meth:`DataFlow.get_with`."""
    st = db._state(model)
    for name in related:
        if name in st.model.fields:
            raise ValidationError(f"related {name!r} would hide field {name!r} of {st.name}")
    plans = _plans(db, related)
    mode = db.dialect.fold_reads
    if mode is None or not plans:
        row = await db.get(model, id)
        if row is None:
            return None
        for name, rel in related.items():
            row[name] = await db.select(
                rel.model, rel.filter, order_by=rel.order_by, limit=rel.limit
            )
        return row
    missing = [p.st for p in plans.values() if p.st.name not in db._ensured]
    if missing:
        await db._ensure(missing)
    c = db._statements.get(
        ("get", st.name),
        lambda: sa.select(*st.columns).where(st.table.c.id == sa.bindparam("w0")),
    )
    main_args = [st.codec.encode_scalar(st.model.fields["id"], id)]
    args = main_args + [a for p in plans.values() for a in p.args]
    key = ("get-with", st.name, tuple((n, p.sql) for n, p in plans.items()))
    if mode == "json":
        parts = [(p.sql, len(p.args), tuple(p.st.model.fields)) for p in plans.values()]
        sql = db._statements.memo(key, lambda: db.dialect.fold_sql(c.sql, 1, parts))
        decoders = [
            db._statements.memo(("folded", p.st.name), partial(_folded, db, p.st))
            for p in plans.values()
        ]

        async def folded(conn: Connection) -> dict[str, Any] | None:
            rows = await conn.fetch(sql, args)
            if not rows:
                return None
            width = len(st.columns)
            record = st.codec.decode_row(rows[0][:width])
            for (name, _), decode, raw in zip(
                plans.items(), decoders, rows[0][width:], strict=True
            ):
                record[name] = [decode(r) for r in json.loads(raw)]
            return record

        return await db._run(st, folded, write=False)
    script = db._statements.memo(key, lambda: ";\n".join([c.sql, *(p.sql for p in plans.values())]))

    async def scripted(conn: Connection) -> dict[str, Any] | None:
        results = await conn.results(script, args)
        if not results[0]:
            return None
        record = st.codec.decode_row(results[0][0])
        for (name, p), rows in zip(plans.items(), results[1:], strict=True):
            record[name] = p.st.codec.decode_rows(rows)
        return record

    return await db._run(st, scripted, write=False)


def _folded(db: DataFlow, st: ModelState) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """A decoder of one related record as the dialect's JSON aggregate carries it."""
    names = tuple(st.model.fields)
    convert = [db.dialect.folded_value(f.kind) for f in st.model.fields.values()]

    def decode(values: Sequence[Any]) -> dict[str, Any]:
        return {
            n: v if conv is None or v is None else conv(v)
            for n, conv, v in zip(names, convert, values, strict=True)
        }

    return decode
