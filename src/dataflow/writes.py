"""The writing half of the CRUD vocabulary: inserts, upserts, updates.

Membership side tables (JSON list indexes on dialects without a native one)
are kept in step here, in the same transaction as the row they index.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa

from dataflow.dialects.base import GUARD, Connection, Dialect
from dataflow.errors import ConcurrencyError, NotFoundError, ValidationError
from dataflow.jsonvalues import describe, dump_json
from dataflow.models import AUTO_FIELDS, VERSION_FIELD
from dataflow.statements import (
    Compiled,
    Filter,
    ModelRef,
    ModelState,
    Statements,
    aware,
    check_count,
    check_merge,
    side_delete,
    side_insert,
)
from dataflow.values import utcnow

__all__ = ["WriteOperations"]

T = TypeVar("T")


class WriteOperations:
    """Inserts, upserts and updates; :class:`~dataflow.operations.Operations` adds the rest."""

    _statements: Statements
    dialect: Dialect

    def _state(self, model: ModelRef) -> ModelState:
        raise NotImplementedError  # pragma: no cover

    async def _run(
        self,
        state: ModelState,
        fn: Callable[[Connection], Awaitable[T]],
        *,
        write: bool,
        atomic: bool = False,
    ) -> T:
        raise NotImplementedError  # pragma: no cover

    async def get(self, model: ModelRef, id: str) -> dict[str, Any] | None:
        raise NotImplementedError  # pragma: no cover

    # -- inserts -----------------------------------------------------------

    def _prepare(
        self, st: ModelState, values: Mapping[str, Any], now: datetime
    ) -> tuple[dict[str, Any], list[Any]]:
        if not isinstance(values, Mapping):
            raise ValidationError(f"a {st.name} record must be a dict, got {type(values).__name__}")
        st.codec.check_keys(values, st.model.insertable)
        record: dict[str, Any] = {}
        for name, f in st.model.fields.items():
            if name in values:
                record[name] = values[name]
            elif name in AUTO_FIELDS:
                record[name] = now
            elif name == VERSION_FIELD and st.model.versioned:
                record[name] = 1
            elif f.has_default:
                record[name] = f.make_default()
            else:
                raise ValidationError(f"missing required field {name!r} for model {st.name}")
        args = [st.codec.encode(n, v) for n, v in record.items()]
        return {n: aware(v) for n, v in record.items()}, args

    def _insert_sql(self, st: ModelState, *, guarded: bool = False) -> Compiled:
        if not guarded:
            return self._statements.get(
                ("insert", st.name),
                lambda: sa.insert(st.table).values(
                    {n: sa.bindparam(f"v_{n}") for n in st.model.fields}
                ),
            )
        # INSERT ... SELECT <values> WHERE <guard>: the row only if the guard held
        return self._statements.get(
            ("insert-guarded", st.name),
            lambda: sa.insert(st.table).from_select(
                list(st.model.fields),
                sa.select(
                    *(sa.bindparam(f"v_{n}", type_=st.table.c[n].type) for n in st.model.fields)
                ).where(sa.text(GUARD)),
            ),
        )

    async def insert(self, model: ModelRef, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one record; fill defaults and timestamps; return it.

        ``created_at`` may be given (e.g. when importing); ``updated_at`` is always now.

        Raises:
            ValidationError: Unknown, managed or missing fields, or bad values.
            DuplicateKeyError: The id (or a unique index) is taken.
        """
        st = self._state(model)
        record, args = self._prepare(st, values, utcnow())
        return await self._insert_prepared(st, record, args)

    async def _insert_prepared(
        self, st: ModelState, record: dict[str, Any], args: list[Any]
    ) -> dict[str, Any]:
        """Insert a record :meth:`_prepare` checked and encoded."""
        c = self._insert_sql(st)

        async def fn(conn: Connection) -> dict[str, Any]:
            await conn.execute(c.sql, args)
            await self._write_sides(conn, st, [record])
            return record

        return await self._run(st, fn, write=True, atomic=bool(st.tables.sides))

    async def insert_many(self, model: ModelRef, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert many records atomically (all or none); return how many."""
        st = self._state(model)
        now = utcnow()
        prepared = [self._prepare(st, r, now) for r in records]
        if not prepared:
            return 0
        c = self._insert_sql(st)

        async def fn(conn: Connection) -> int:
            await conn.executemany(c.sql, [a for _, a in prepared])
            await self._write_sides(conn, st, [r for r, _ in prepared])
            return len(prepared)

        return await self._run(st, fn, write=True, atomic=True)

    async def _write_sides(
        self,
        conn: Connection,
        st: ModelState,
        records: Sequence[Mapping[str, Any]],
        *,
        replace: bool = False,
    ) -> None:
        for field, side in st.tables.sides.items():
            touched = [r for r in records if field in r]
            if replace and touched:
                c = self._statements.get(("side-del", side.name), partial(side_delete, side))
                await conn.executemany(c.sql, [[r["id"]] for r in touched])
            rows = [
                [r["id"], v]
                for r in touched
                for v in dict.fromkeys(dump_json(e, f"field {field!r}") for e in (r[field] or ()))
            ]
            if rows:
                c = self._statements.get(("side-ins", side.name), partial(side_insert, side))
                await conn.executemany(c.sql, rows)

    async def upsert(self, model: ModelRef, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert the record, or replace the stored one (created_at kept); return it.

        Omitted fields take their defaults, as on insert.
        """
        st = self._state(model)
        await self.upsert_many(model, [values])
        result = await self.get(st.name, values["id"])
        assert result is not None
        return result

    async def upsert_many(self, model: ModelRef, records: Sequence[Mapping[str, Any]]) -> int:
        """Insert or update many records atomically; return how many were given."""
        st = self._state(model)
        now = utcnow()
        prepared = [self._prepare(st, r, now) for r in records]
        if not prepared:
            return 0
        c = self._statements.get(
            ("upsert", st.name),
            lambda: self.dialect.upsert(
                st.table, [n for n in st.model.fields if n not in ("id", "created_at")]
            ),
        )

        async def fn(conn: Connection) -> int:
            await conn.executemany(c.sql, [a for _, a in prepared])
            await self._write_sides(conn, st, [r for r, _ in prepared], replace=True)
            return len(prepared)

        return await self._run(st, fn, write=True, atomic=True)

    # -- updates -----------------------------------------------------------

    def _update_plan(
        self,
        st: ModelState,
        filter: Filter,
        values: Mapping[str, Any],
        merge: Mapping[str, Mapping[str, Any]] | None,
        extra: Mapping[str, Any],
        *,
        guarded: bool = False,
    ) -> tuple[Compiled, list[Any]]:
        if not isinstance(filter, Mapping):
            raise ValidationError("an update needs a filter dict ({} updates every record)")
        st.codec.check_keys(values, st.model.writable)
        if "id" in values:
            raise ValidationError(f"the id of a {st.name} cannot be updated")
        merge = check_merge(st, values, merge)
        sets = {**values, **extra, "updated_at": utcnow()}
        params = {f"s_{n}": st.codec.encode(n, v) for n, v in sets.items()}
        merge_shape = tuple((n, len(u)) for n, u in merge.items())
        for n, updates in merge.items():
            params[f"m_{n}"] = dump_json(dict(updates), f"merge into {n!r}")
            for i, k in enumerate(updates):
                params[f"m_{n}_{i}"] = self.dialect.json_path(k)
        fvalues: list[Any] = []
        shape, _ = st.filters.walk(filter, None, fvalues, False)
        params.update({f"w{i}": v for i, v in enumerate(fvalues)})

        def build() -> Any:
            _, where = st.filters.walk(filter, st.table, [], True)
            assignments: dict[Any, Any] = {
                n: sa.bindparam(f"s_{n}", type_=st.table.c[n].type) for n in sets
            }
            for n, count in merge_shape:
                col = st.table.c[n]
                paths = [sa.bindparam(f"m_{n}_{i}", type_=sa.String) for i in range(count)]
                assignments[n] = self.dialect.json_merge(
                    col, sa.bindparam(f"m_{n}", type_=col.type), paths
                )
            stmt = sa.update(st.table).values(assignments)
            stmt = stmt if where is None else stmt.where(where)
            return stmt.where(sa.text(GUARD)) if guarded else stmt

        key = ("update", st.name, tuple(sets), merge_shape, shape, guarded)
        c = self._statements.get(key, build)
        return c, c.args(params)

    async def update_where(
        self,
        model: ModelRef,
        filter: Filter,
        values: Mapping[str, Any],
        *,
        merge: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Conditional update: ``UPDATE ... SET values WHERE filter``; return rows matched.

        Args:
            model: Model class or name.
            filter: Which records (``{}`` for all).
            values: Field values to set; ``updated_at`` is set automatically.
            merge: ``{dict_field: updates}``: shallow ``dict.update`` of a JSON
                object column, done atomically by the database.
        """
        st = self._state(model)
        if merge and not self._merges_in_sql(merge):
            return await self._merge_rows(st, filter, values, check_merge(st, values, merge))
        c, args = self._update_plan(st, filter, values, merge, {})
        touched_sides = [f for f in st.tables.sides if f in values]

        async def fn(conn: Connection) -> int:
            ids: list[Any] = []
            if touched_sides:
                ids = [r[0] for r in await conn.fetch(*self._ids_sql(st, filter))]
            n = await conn.execute(c.sql, args)
            if touched_sides:
                await self._write_sides(
                    conn,
                    st,
                    [{"id": i, **{f: values[f] for f in touched_sides}} for i in ids],
                    replace=True,
                )
            return n

        return await self._run(st, fn, write=True, atomic=bool(touched_sides))

    def _delete_plan(
        self, st: ModelState, filter: Filter, limit: int | None, *, guarded: bool = False
    ) -> tuple[Compiled, list[Any]]:
        if not isinstance(filter, Mapping):
            raise ValidationError("a delete needs a filter dict ({} deletes every record)")
        if limit is not None:
            check_count("limit", limit)
        values: list[Any] = []
        shape, _ = st.filters.walk(filter, None, values, False)

        def build() -> Any:
            _, where = st.filters.walk(filter, st.table, [], True)
            where = sa.true() if where is None else where
            if guarded:
                where = sa.and_(where, sa.text(GUARD))
            stmt = sa.delete(st.table)
            if limit is None:
                return stmt.where(where)
            return self.dialect.limit_delete(
                stmt, st.table, where, sa.bindparam("lim", type_=sa.Integer)
            )

        c = self._statements.get(("delete", st.name, shape, limit is not None, guarded), build)
        params: dict[str, Any] = {f"w{i}": v for i, v in enumerate(values)}
        params["lim"] = limit
        return c, c.args(params)

    def _merges_in_sql(self, merge: Mapping[str, Mapping[str, Any]]) -> bool:
        dialect = self.dialect
        if not dialect.json_merge_in_sql:
            return False
        if not isinstance(merge, Mapping):
            return True  # refused by check_merge
        return all(
            dialect.json_key_addressable(k)
            for updates in merge.values()
            if isinstance(updates, Mapping)
            for k in updates
            if isinstance(k, str)
        )

    async def _merge_rows(
        self,
        st: ModelState,
        filter: Filter,
        values: Mapping[str, Any],
        merge: Mapping[str, Mapping[str, Any]],
    ) -> int:
        """Merge in Python, row by row, inside one transaction, on rows locked for it.

        For dialects whose SQL JSON functions would alter numbers (SQLite re-prints
        floats with 15 digits) or cannot address a key: the rows are read ``FOR
        UPDATE`` (SQLite: the transaction's write lock), so it stays atomic.
        """
        if not merge:
            return await self.update_where(st.name, filter, values)
        fields = list(merge)
        sql, args = self._ids_sql(st, filter, fields, lock=True)
        decode = json.loads

        async def fn(conn: Connection) -> int:
            count = 0
            for row in await conn.fetch(sql, args):
                merged = {
                    f: {**(decode(raw) if raw is not None else {}), **merge[f]}
                    for f, raw in zip(fields, row[1:], strict=True)
                }
                c, row_args = self._update_plan(st, {"id": row[0]}, {**values, **merged}, None, {})
                count += await conn.execute(c.sql, row_args)
            return count

        return await self._run(st, fn, write=True, atomic=True)

    def _ids_sql(
        self, st: ModelState, filter: Filter, columns: Sequence[str] = (), *, lock: bool = False
    ) -> tuple[str, list[Any]]:
        values: list[Any] = []
        shape, _ = st.filters.walk(filter, None, values, False)

        def build() -> Any:
            _, where = st.filters.walk(filter, st.table, [], True)
            stmt = sa.select(st.table.c.id, *(st.table.c[n] for n in columns))
            stmt = stmt if where is None else stmt.where(where)
            return stmt.with_for_update() if lock else stmt  # SQLite renders no lock clause

        c = self._statements.get(("ids", st.name, shape, tuple(columns), lock), build)
        return c.sql, c.args({f"w{i}": v for i, v in enumerate(values)})

    async def update(
        self, model: ModelRef, id: str, values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Update one record by id; return it as stored, or None if it does not exist."""
        st = self._state(model)
        c, args = self._update_plan(st, {"id": id}, values, None, {})
        get_sql = self._statements.get(
            ("get", st.name),
            lambda: sa.select(*st.columns).where(st.table.c.id == sa.bindparam("w0")),
        )

        async def fn(conn: Connection) -> dict[str, Any] | None:
            if not await conn.execute(c.sql, args):
                return None
            if st.tables.sides:
                await self._write_sides(conn, st, [{"id": id, **values}], replace=True)
            rows = await conn.fetch(get_sql.sql, [id])
            return st.codec.decode_row(rows[0])

        return await self._run(st, fn, write=True, atomic=True)

    async def update_versioned(
        self, model: ModelRef, id: str, version: int, values: Mapping[str, Any]
    ) -> int:
        """Optimistic-concurrency update of a ``versioned`` model; return the new version.

        Raises:
            ConcurrencyError: The stored version is no longer ``version``.
            NotFoundError: No record has this id.
        """
        st = self._state(model)
        if not st.model.versioned:
            raise ValidationError(f"model {st.name} is not versioned (use versioned=True)")
        check_count("version", version)
        c, args = self._update_plan(
            st, {"id": id, VERSION_FIELD: version}, values, None, {VERSION_FIELD: version + 1}
        )

        async def fn(conn: Connection) -> int:
            return await conn.execute(c.sql, args)

        if not await self._run(st, fn, write=True):
            if await self.get(st.name, id) is None:
                raise NotFoundError(f"{st.name} {describe(id)} does not exist")
            raise ConcurrencyError(
                f"{st.name} {describe(id)} was changed concurrently (expected version {version})"
            )
        return version + 1
