"""The CRUD vocabulary every model gets, built from a few cached statements.

:class:`Operations` is shared by :class:`~dataflow.core.DataFlow` (each call on a
pooled connection) and :class:`~dataflow.core.Transaction` (all calls on one
connection inside one transaction). Each statement shape is built with
SQLAlchemy Core and compiled once per dialect; a call only gathers values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dataflow.dialects.base import Connection
from dataflow.or_split import merge_ordered, or_branches
from dataflow.statements import (
    Compiled,
    Filter,
    ModelRef,
    ModelState,
    OrderBy,
    Statements,
    check_count,
    order_keys,
)
from dataflow.writes import WriteOperations

__all__ = ["ModelRef", "ModelState", "Operations", "OrderBy", "Statements"]


class Operations(WriteOperations):
    """CRUD primitives; subclasses decide on which connection they run."""

    # -- reads -------------------------------------------------------------

    async def get(self, model: ModelRef, id: str) -> dict[str, Any] | None:
        """Return the record with primary key ``id``, or None."""
        st = self._state(model)
        c = self._statements.get(
            ("get", st.name),
            lambda: sa.select(*st.columns).where(st.table.c.id == sa.bindparam("w0")),
        )
        args = [st.codec.encode_scalar(st.model.fields["id"], id)]

        async def fn(conn: Connection) -> dict[str, Any] | None:
            rows = await conn.fetch(c.sql, args)
            return st.codec.decode_row(rows[0]) if rows else None

        return await self._run(st, fn, write=False)

    async def select(
        self,
        model: ModelRef,
        filter: Filter | None = None,
        *,
        order_by: OrderBy = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Return the records matching ``filter``.

        Args:
            model: Model class or name.
            filter: A filter dict (see :mod:`dataflow.filters`).
            order_by: ``"field"``, ``"-field"`` (descending), a list of those, or
                ``[("field", "asc"|"desc")]``. ``id`` breaks ties.
            limit: At most this many records.
            offset: Skip this many records first.

        With ``order_by`` and ``limit``, a top-level ``$or`` runs as one query per
        branch where the database would otherwise scan (MySQL; see
        :mod:`dataflow.or_split`): same rows, same order.
        """
        st = self._state(model)
        order = order_keys(st, order_by)
        if limit is not None:
            check_count("limit", limit)
        check_count("offset", offset)
        if limit is not None and order and not self.dialect.or_uses_indexes:
            branches = or_branches(filter)
            if branches is not None:
                window = limit + offset
                parts = [
                    await self.select(model, b, order_by=order_by, limit=window) for b in branches
                ]
                return merge_ordered(parts, order, limit, offset)
        c, args = self._select_plan(st, filter, order, limit, offset)

        async def fn(conn: Connection) -> list[dict[str, Any]]:
            return st.codec.decode_rows(await conn.fetch(c.sql, args))

        return await self._run(st, fn, write=False)

    def _select_plan(
        self,
        st: ModelState,
        filter: Filter | None,
        order: Sequence[tuple[str, bool]],
        limit: int | None,
        offset: int,
        *,
        ordinal: bool = False,
    ) -> tuple[Compiled, list[Any]]:
        """The SELECT of :meth:`select` (with ``ordinal``: plus each row's position in
        the order, as column ``dataflow_ord``, for folding it into another query)."""
        values: list[Any] = []
        shape, _ = st.filters.walk(filter, None, values, False)
        key = ("select", st.name, shape, tuple(order), limit is not None, offset > 0, ordinal)

        def build() -> Any:
            _, where = st.filters.walk(filter, st.table, [], True)
            stmt = sa.select(*st.columns)
            if where is not None:
                stmt = stmt.where(where)
            fields = st.model.fields
            keys = [
                key
                for n, d in order
                for key in (
                    self.dialect.order_nullable(st.table.c[n], d)
                    if fields[n].nullable
                    else [st.table.c[n].desc() if d else st.table.c[n].asc()]
                )
            ]
            if order and "id" not in (n for n, _ in order):
                keys.append(st.table.c.id.desc() if order[-1][1] else st.table.c.id.asc())
            stmt = stmt.order_by(*keys)
            if ordinal:
                position = sa.func.row_number().over(order_by=keys or [st.table.c.id.asc()])
                stmt = stmt.add_columns(position.label("dataflow_ord"))
            if limit is not None:
                stmt = stmt.limit(sa.bindparam("lim", type_=sa.Integer))
            if offset > 0:
                stmt = stmt.offset(sa.bindparam("off", type_=sa.Integer))
            return stmt

        c = self._statements.get(key, build)
        params: dict[str, Any] = {f"w{i}": v for i, v in enumerate(values)}
        params["lim"], params["off"] = limit, offset
        return c, c.args(params)

    async def count(self, model: ModelRef, filter: Filter | None = None) -> int:
        """Return how many records match ``filter``."""
        st = self._state(model)
        values: list[Any] = []
        shape, _ = st.filters.walk(filter, None, values, False)

        def build() -> Any:
            _, where = st.filters.walk(filter, st.table, [], True)
            stmt = sa.select(sa.func.count()).select_from(st.table)
            return stmt if where is None else stmt.where(where)

        c = self._statements.get(("count", st.name, shape), build)
        args = c.args({f"w{i}": v for i, v in enumerate(values)})

        async def fn(conn: Connection) -> int:
            rows = await conn.fetch(c.sql, args)
            return int(rows[0][0])

        return await self._run(st, fn, write=False)

    # -- deletes -----------------------------------------------------------

    async def delete(self, model: ModelRef, id: str) -> bool:
        """Delete one record by id; return whether it existed."""
        return await self.delete_where(model, {"id": id}) > 0

    async def delete_where(
        self, model: ModelRef, filter: Filter, *, limit: int | None = None
    ) -> int:
        """Delete the records matching ``filter`` (at most ``limit``); return how many."""
        st = self._state(model)
        c, args = self._delete_plan(st, filter, limit)

        async def fn(conn: Connection) -> int:
            return await conn.execute(c.sql, args)

        return await self._run(st, fn, write=True)
