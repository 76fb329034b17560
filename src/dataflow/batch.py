"""Write batches: several writes applied atomically, in the fewest round trips.

A batch records steps, then :meth:`WriteBatch.run` applies them all or none. A step
given ``when=`` runs only if that earlier step matched (or inserted) a row, so a
compare-and-set and what it entails travel together::

    batch = db.batch()
    moved = batch.update_where("Request", {"id": rid, "seq": 3}, {"seq": 4})
    batch.insert("Event", {"id": eid, "request_id": rid, "seq": 4}, when=moved)
    batch.notify("changed", rid, when=moved)
    result = await batch.run()
    if result[moved]: ...  # the update matched: the event is written, listeners told

Each step writes rows of its own: steps see the database as it was before the
batch (on PostgreSQL they are one statement), not each other's changes, except
through a guard, which tells whether a step matched. Updating one row twice in a
batch is not supported.

How a batch reaches the database is the dialect's choice (``batch_script``):
PostgreSQL sends one statement of data-modifying CTEs, MySQL/MariaDB one
multi-statement transaction, each a single round trip. SQLite, and any batch a
single statement cannot express (an update of a field kept in a membership side
table), runs as one ordinary transaction, step by step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.dialects.base import GUARD, BatchPart, Connection
from dataflow.errors import DataFlowError, ValidationError
from dataflow.jsonvalues import dump_json
from dataflow.statements import Compiled, Filter, ModelRef, ModelState
from dataflow.values import utcnow

if TYPE_CHECKING:
    from dataflow.core import DataFlow
    from dataflow.transactions import Transaction

__all__ = ["BatchResult", "Step", "WriteBatch"]


@dataclass(frozen=True, slots=True)
class Step:
    """A step of a :class:`WriteBatch`: pass it as ``when=`` or index a result with it."""

    index: int


@dataclass(slots=True)
class _Op:
    kind: str  # insert | update | delete | notify
    st: ModelState | None
    when: int | None
    values: Mapping[str, Any]
    filter: Filter
    record: dict[str, Any]  # inserts: the prepared record
    args: list[Any]  # inserts: its encoded values; notify: channel and payload
    plan: tuple[Compiled, list[Any]] | None = None  # updates, deletes: SQL and arguments


class BatchResult:
    """Rows each step matched or inserted (0 for a step skipped by its ``when``)."""

    __slots__ = ("_counts",)

    def __init__(self, counts: list[int]) -> None:
        self._counts = counts

    def __getitem__(self, step: Step) -> int:
        return self._counts[step.index]

    def __repr__(self) -> str:
        return f"BatchResult({self._counts})"


def _single(filter: Filter) -> str | None:
    """The id a filter names by equality (``{"id": "x", ...}``), else None."""
    found = filter.get("id") if isinstance(filter, Mapping) else None
    return found if isinstance(found, str) else None


def _unside(side: sa.Table) -> Any:
    """A record's membership side-table rows, deleted only if its guard held."""
    owner = sa.bindparam("o", type_=side.c.owner_id.type)
    return sa.delete(side).where(side.c.owner_id == owner).where(sa.text(GUARD))


def _side(side: sa.Table) -> Any:
    """A membership side-table row, inserted only if its owner's guard held."""
    values = sa.select(
        sa.bindparam("o", type_=side.c.owner_id.type), sa.bindparam("v", type_=side.c.value.type)
    ).where(sa.text(GUARD))
    return sa.insert(side).from_select(["owner_id", "value"], values)


class WriteBatch:
    """Writes applied together (see the module docs); made by :meth:`DataFlow.batch`.

    Values are checked as steps are added (a bad one raises
    :class:`~dataflow.errors.ValidationError` and nothing is sent); a database
    error in any step rolls every step back. A batch runs once.
    """

    def __init__(self, db: DataFlow) -> None:
        self._db = db
        self._ops: list[_Op] = []
        self._ran = False

    def _when(self, when: Step | None) -> int | None:
        if when is None:
            return None
        if not isinstance(when, Step) or not 0 <= when.index < len(self._ops):
            raise ValidationError("when= must be a step of the same batch, added before")
        if self._ops[when.index].kind == "notify":
            raise ValidationError("when= cannot be a notification")
        return when.index

    def _add(self, op: _Op) -> Step:
        if self._ran:
            raise DataFlowError("this batch has run; make a new one")
        self._ops.append(op)
        return Step(len(self._ops) - 1)

    def insert(
        self, model: ModelRef, values: Mapping[str, Any], *, when: Step | None = None
    ) -> Step:
        """Insert one record (defaults and timestamps as :meth:`DataFlow.insert`)."""
        st = self._db._state(model)
        record, args = self._db._prepare(st, values, utcnow())
        return self._add(_Op("insert", st, self._when(when), values, {}, record, args))

    def update_where(
        self,
        model: ModelRef,
        filter: Filter,
        values: Mapping[str, Any],
        *,
        when: Step | None = None,
    ) -> Step:
        """``UPDATE ... SET values WHERE filter`` (as :meth:`DataFlow.update_where`)."""
        st = self._db._state(model)
        guard = self._when(when)
        plan = self._db._update_plan(st, filter, values, None, {}, guarded=guard is not None)
        return self._add(_Op("update", st, guard, values, filter, {}, [], plan))

    def delete_where(self, model: ModelRef, filter: Filter, *, when: Step | None = None) -> Step:
        """Delete the records matching ``filter``."""
        st = self._db._state(model)
        guard = self._when(when)
        plan = self._db._delete_plan(st, filter, None, guarded=guard is not None)
        return self._add(_Op("delete", st, guard, {}, filter, {}, [], plan))

    def notify(self, channel: str, payload: str, *, when: Step | None = None) -> None:
        """Tell listeners of ``channel`` at commit (a no-op without notifications)."""
        if not isinstance(channel, str) or not isinstance(payload, str):
            raise ValidationError("a notification's channel and payload must be strings")
        self._add(_Op("notify", None, self._when(when), {}, {}, {}, [channel, payload]))

    async def run(self) -> BatchResult:
        """Apply every step (all or none) and return what each matched.

        Raises:
            DuplicateKeyError, IntegrityError, ConcurrencyError, ...: from the
                database; nothing of the batch is written.
        """
        if self._ran:
            raise DataFlowError("this batch has run; make a new one")
        self._ran = True
        db = self._db
        states = [op.st for op in self._ops if op.st is not None]
        if not states:
            return BatchResult([0] * len(self._ops))
        missing = [st for st in states if st.name not in db._ensured]
        if missing:
            await db._ensure(missing)
        if not db.dialect.supports_batch_script or not self._expressible():
            return await self._stepwise()
        parts, args, owners = self._parts()
        key = tuple((p.key, p.guard) for p in parts)
        script = db._statements.memo(key, lambda: db.dialect.batch_script(parts))

        async def fn(conn: Connection) -> list[int]:
            counts = await conn.script(script, args)
            return [int(c) for c in counts]

        counts = await db._run(states[0], fn, write=True)
        result = [0] * len(self._ops)
        for part, owner in enumerate(owners):
            if owner is not None:
                result[owner] = counts[part]
        return BatchResult(result)

    # -- one transaction, step by step ---------------------------------------

    async def _stepwise(self) -> BatchResult:
        counts: list[int] = []
        async with self._db.transaction() as tx:
            for op in self._ops:
                if op.when is not None and not counts[op.when]:
                    counts.append(0)
                else:
                    counts.append(await self._apply(tx, op))
        return BatchResult(counts)

    @staticmethod
    async def _apply(tx: Transaction, op: _Op) -> int:
        if op.kind == "notify":
            await tx.notify(op.args[0], op.args[1])
            return 1
        assert op.st is not None
        if op.kind == "insert":
            await tx._insert_prepared(op.st, op.record, op.args)
            return 1
        if op.kind == "update":
            return await tx.update_where(op.st.name, op.filter, op.values)
        return await tx.delete_where(op.st.name, op.filter)

    # -- one script ----------------------------------------------------------

    def _expressible(self) -> bool:
        """Whether a script can do it: an update rewriting a membership side table
        must name its one record (``{"id": ..., ...}``), whose side rows it replaces."""
        return all(
            _single(op.filter) is not None
            for op in self._ops
            if op.kind == "update" and any(f in op.values for f in op.st.tables.sides)  # type: ignore[union-attr]
        )

    def _parts(self) -> tuple[list[BatchPart], list[Any], list[int | None]]:
        """The statements of the script, their arguments, and the step each counts for."""
        db = self._db
        parts: list[BatchPart] = []
        args: list[Any] = []
        owners: list[int | None] = []
        first: dict[int, int] = {}  # step -> its first part (what dependents wait for)

        def add(sql: str, key: Any, values: list[Any], guard: int | None, owner: int | None) -> int:
            parts.append(BatchPart(sql, key, len(values), guard, not sql))
            args.extend(values)
            owners.append(owner)
            return len(parts) - 1

        for i, op in enumerate(self._ops):
            guard = None if op.when is None else first[op.when]
            if op.kind == "notify":
                if db.dialect.supports_notify:  # elsewhere waiters poll
                    add("", ("notify",), op.args, guard, None)
                continue
            st = op.st
            assert st is not None
            guarded = guard is not None
            if op.kind == "insert":
                c = db._insert_sql(st, guarded=guarded)
                first[i] = add(c.sql, ("insert", st.name, guarded), op.args, guard, i)
                for side_key, sql, row in self._side_rows(st, op.record):
                    add(sql, side_key, row, first[i], None)
            elif op.kind == "update":
                assert op.plan is not None
                c, values = op.plan
                first[i] = add(c.sql, ("update", c.sql), values, guard, i)
                touched = {f: op.values[f] for f in st.tables.sides if f in op.values}
                if touched:  # the record's side rows, replaced if the update matched
                    owner = _single(op.filter)
                    for field, side in st.tables.sides.items():
                        if field in touched:
                            d = db._statements.get(
                                ("side-del-guarded", side.name), partial(_unside, side)
                            )
                            add(d.sql, ("side-del", side.name), [owner], first[i], None)
                    for side_key, sql, row in self._side_rows(st, {"id": owner, **touched}):
                        add(sql, side_key, row, first[i], None)
            else:
                assert op.plan is not None
                c, values = op.plan
                first[i] = add(c.sql, ("delete", c.sql), values, guard, i)
        return parts, args, owners

    def _side_rows(
        self, st: ModelState, record: Mapping[str, Any]
    ) -> list[tuple[Any, str, list[Any]]]:
        found = []
        for field, side in st.tables.sides.items():
            elements = record.get(field) or ()
            c = self._db._statements.get(("side-ins-guarded", side.name), partial(_side, side))
            for value in dict.fromkeys(dump_json(e, f"field {field!r}") for e in elements):
                found.append((("side", side.name), c.sql, [record["id"], value]))
        return found
