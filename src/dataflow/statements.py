"""Statement shapes compiled once, and models as bound to one DataFlow."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa

from dataflow.dialects.base import Dialect
from dataflow.errors import ValidationError
from dataflow.filters import FilterCompiler
from dataflow.jsonvalues import INT64, describe, dump_json
from dataflow.models import Kind, ModelInfo
from dataflow.schema import ModelTables
from dataflow.values import Codec

__all__ = ["Compiled", "Filter", "ModelRef", "ModelState", "OrderBy", "Statements"]

T = TypeVar("T")
Filter = Mapping[str, Any]
OrderBy = str | Sequence[str] | Sequence[tuple[str, str]] | None
ModelRef = type | str


class Compiled(NamedTuple):
    """SQL text of one statement shape and how to order its values."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional driver arguments for ``params``."""
        return [params[n] if n in params else self.defaults[n] for n in self.names]


class Statements:
    """Compiled statements of one dialect, keyed by shape."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._cache: dict[Any, Compiled] = {}
        self._memo: dict[Any, Any] = {}

    def get(self, key: Any, build: Callable[[], Any]) -> Compiled:
        """The compiled statement for ``key``, building it on first use."""
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = self._cache[key] = self.compile(build())
        return compiled

    def memo(self, key: Any, build: Callable[[], T]) -> T:
        """What ``build`` makes for ``key`` (a batch script, a folded-row decoder...),
        built on first use."""
        found: T | None = self._memo.get(key)
        if found is None:
            found = self._memo[key] = build()
        return found

    def compile(self, stmt: Any) -> Compiled:
        """Compile a SQLAlchemy statement for the dialect."""
        c = stmt.compile(dialect=self._dialect.sa_dialect)
        names = tuple(c.positiontup or ())
        return Compiled(
            str(c), names, {n: c.params[n] for n in names if c.params.get(n) is not None}
        )


class ModelState:
    """A model as bound to one DataFlow: tables, codec, filters."""

    def __init__(
        self, model: ModelInfo, tables: ModelTables, dialect: Dialect, seq: int = 0
    ) -> None:
        self.model = model
        self.name = model.name
        #: Registration order on its DataFlow (0 for the first model).
        self.seq = seq
        self.tables = tables
        self.table = tables.main
        self.codec = Codec(model, dialect)
        self.filters = FilterCompiler(model, self.codec, self._membership)
        self._dialect = dialect
        self.columns = [self.table.c[n] for n in model.fields]

    def _membership(self, field: str, element: Any) -> tuple[Callable[[Any], Any], Any]:
        encoded = dump_json(element, f"$contains on {field!r}")
        if field in self.tables.native_membership:
            col = self.table.c[field]
            return (lambda b: self._dialect.json_contains(col, b)), self._dialect.membership_value(
                encoded
            )
        side = self.tables.sides.get(field)
        if side is None:
            raise ValidationError(
                f"$contains on {self.name}.{field} needs Index({field!r}, membership=True)"
            )
        return (
            lambda b: self.table.c.id.in_(sa.select(side.c.owner_id).where(side.c.value == b))
        ), encoded


def order_keys(state: ModelState, order_by: OrderBy) -> tuple[tuple[str, bool], ...]:
    """``order_by`` as ``((field, descending), ...)``.

    Raises:
        ValidationError: Not a field name, ``"-field"``, ``(field, "asc"|"desc")`` or a
            list of those; or an unknown field.
    """
    if order_by is None:
        return ()
    if isinstance(order_by, str) or (isinstance(order_by, tuple) and _is_pair(order_by)):
        items: Sequence[Any] = [order_by]
    elif isinstance(order_by, list | tuple):
        items = order_by
    else:
        raise ValidationError(
            f"order_by takes a field name or a list of them, got {describe(order_by)}"
        )
    result = []
    for item in items:
        if isinstance(item, str):
            desc, name = item.startswith("-"), item[1:] if item.startswith("-") else item
        elif isinstance(item, tuple | list) and _is_pair(item):
            name, direction = item
            if direction not in ("asc", "desc"):
                raise ValidationError(
                    f"order direction must be 'asc' or 'desc', got {describe(direction)}"
                )
            desc = direction == "desc"
        else:
            raise ValidationError(
                f"bad order_by item {describe(item)}: use 'field', '-field' or ('field', 'desc')"
            )
        if name not in state.model.fields:
            raise ValidationError(
                f"unknown field {describe(name)} in order_by for model {state.name}"
            )
        result.append((name, desc))
    return tuple(result)


def _is_pair(item: Sequence[Any]) -> bool:
    return len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], str)


def check_count(name: str, value: Any) -> int:
    """Return ``value`` if it is a non-negative 64-bit int (limits, offsets, versions)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64[1]:
        raise ValidationError(f"{name} must be a non-negative 64-bit int, got {describe(value)}")
    return value


def check_merge(
    st: ModelState, values: Mapping[str, Any], merge: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Mapping[str, Any]]:
    """Validate merge targets; drop empty updates (they change nothing)."""
    if merge is not None and not isinstance(merge, Mapping):
        raise ValidationError(f"merge takes a dict of {{field: updates}}, got {describe(merge)}")
    for name, updates in (merge or {}).items():
        f = st.model.fields.get(name) if isinstance(name, str) else None
        if f is None or f.kind is not Kind.JSON or f.is_list or name in values:
            raise ValidationError(
                f"merge target {describe(name)} must be a dict field of {st.name} not also set"
            )
        if not isinstance(updates, Mapping) or not all(isinstance(k, str) for k in updates):
            raise ValidationError(f"merge into {name!r} takes a dict with str keys")
        # Checked as one object: the merged value is then within the depth limit too.
        dump_json(dict(updates), f"merge into {name!r}")
    return {n: u for n, u in (merge or {}).items() if u}


def side_delete(side: sa.Table) -> Any:
    return sa.delete(side).where(side.c.owner_id == sa.bindparam("o"))


def side_insert(side: sa.Table) -> Any:
    return sa.insert(side).values(owner_id=sa.bindparam("o"), value=sa.bindparam("v"))


def aware(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) else value
