"""The Mongo-style filter language.

A filter is a dict: ``{"status": "pending"}`` (equality), ``{"age": {"$gte": 18}}``
(operators), ``{"$or": [{...}, {...}]}`` (combinations). Operators: ``$eq $ne $lt
$lte $gt $gte $in $nin $like $null $contains``, combined with ``$and``/``$or``.

Compilation splits a filter into a *shape* (fields, operators, list lengths) and
its *values*. The SQL for a shape is built and compiled once; later calls only
collect values, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import describe, dump_json
from dataflow.models import FieldInfo, Kind, ModelInfo
from dataflow.values import Codec

__all__ = ["OPERATORS", "FilterCompiler", "escape_like"]

OPERATORS = frozenset(
    {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin", "$like", "$null", "$contains"}
)
_COMPARE = {"$lt": "__lt__", "$lte": "__le__", "$gt": "__gt__", "$gte": "__ge__"}
LIKE_ESCAPE = "\\"
_PLAIN = frozenset({str, int, float, bool, datetime})
_SIMPLE_SHAPES = {op: ((op,),) for op in ("$eq", "$ne", "$lt", "$lte", "$gt", "$gte")}


def escape_like(text: str) -> str:
    """Escape ``%``, ``_`` and the escape character so ``text`` matches literally in ``$like``.

    Example:
        ``{"name": {"$like": escape_like(user_text) + "%"}}`` is a prefix match.
    """
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


class FilterCompiler:
    """Walks filters of one model: shape and values, and the SQL clause on demand.

    Args:
        model: The model filtered.
        codec: Converts operands to driver values.
        membership: ``(field, element) -> (sql clause builder, driver value)``
            for ``$contains``; supplied by the core, which knows the dialect.
    """

    def __init__(
        self,
        model: ModelInfo,
        codec: Codec,
        membership: Callable[[str, Any], tuple[Callable[[Any], Any], Any]],
    ) -> None:
        self.model = model
        self.codec = codec
        self._membership = membership

    def walk(
        self, filt: Mapping[str, Any] | None, table: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        """Return ``(shape, clause)``; append operand values to ``values``.

        ``clause`` is None unless ``build``; bind parameters are named ``w0, w1, ...``
        in the order of ``values``.
        """
        if filt is None:
            return (), None
        if not isinstance(filt, Mapping):
            raise ValidationError(f"a filter must be a dict, got {type(filt).__name__}")
        shapes: list[Any] = []
        clauses: list[Any] = []
        fields = self.model.fields
        for key, cond in filt.items():
            f = fields.get(key) if not build and type(key) is str else None
            if f is not None and f.kind is not Kind.JSON:
                # Fast paths of the commonest conditions, {"field": value} and
                # {"field": {"$gt": value}}: same shapes and values as the general path.
                if type(cond) in _PLAIN:
                    values.append(self.codec.encode_scalar(f, cond))
                    shapes.append((key, _SIMPLE_SHAPES["$eq"]))
                    continue
                if type(cond) is dict and len(cond) == 1:
                    op, operand = next(iter(cond.items()))
                    if op in _SIMPLE_SHAPES and type(operand) in _PLAIN:
                        values.append(self.codec.encode_scalar(f, operand))
                        shapes.append((key, _SIMPLE_SHAPES[op]))
                        continue
            if key in ("$and", "$or"):
                shape, clause = self._combine(key, cond, table, values, build)
            elif isinstance(key, str) and key.startswith("$"):
                raise ValidationError(f"unknown filter operator {describe(key)}")
            else:
                shape, clause = self._field(key, cond, table, values, build)
            shapes.append(shape)
            clauses.append(clause)
        if not build:
            return tuple(shapes), None
        import sqlalchemy as sa

        return tuple(shapes), (sa.and_(*clauses) if clauses else None)

    def _combine(
        self, key: str, cond: Any, table: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        if not isinstance(cond, list | tuple) or not cond:
            raise ValidationError(f"{key} takes a non-empty list of filters")
        parts = []
        for sub in cond:
            if not isinstance(sub, Mapping) or not sub:
                raise ValidationError(f"each {key} item must be a non-empty filter dict")
            parts.append(self.walk(sub, table, values, build))
        shape = (key, tuple(p[0] for p in parts))
        if not build:
            return shape, None
        import sqlalchemy as sa

        join = sa.and_ if key == "$and" else sa.or_
        return shape, join(*(p[1] for p in parts))

    def _field(
        self, name: Any, cond: Any, table: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        f = self.model.fields.get(name) if isinstance(name, str) else None
        if f is None:
            raise ValidationError(
                f"unknown field {describe(name)} in filter for model {self.model.name}"
            )
        if (
            type(cond) in _PLAIN
            or cond is None
            or not isinstance(cond, Mapping)
            or not cond
            or not all(isinstance(k, str) and k.startswith("$") for k in cond)
        ):
            ops = [("$eq", cond)]
        else:
            ops = list(cond.items())
        shapes = []
        clauses = []
        for op, operand in ops:
            shape, clause = self._op(f, op, operand, table, values, build)
            shapes.append(shape)
            clauses.append(clause)
        if not build:
            return (name, tuple(shapes)), None
        import sqlalchemy as sa

        return (name, tuple(shapes)), (clauses[0] if len(clauses) == 1 else sa.and_(*clauses))

    def _bind(self, values: list[Any], value: Any, build: bool, column: Any) -> Any:
        name = f"w{len(values)}"
        values.append(value)
        if not build:
            return None
        import sqlalchemy as sa

        return sa.bindparam(name, type_=column.type) if column is not None else sa.bindparam(name)

    def _op(
        self, f: FieldInfo, op: str, operand: Any, table: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        if op not in OPERATORS:
            raise ValidationError(f"unknown filter operator {describe(op)} on field {f.name!r}")
        col: Any = table.c[f.name] if build else None
        if op == "$null" or (op in ("$eq", "$ne") and operand is None):
            is_null = bool(operand) if op == "$null" else op == "$eq"
            if op == "$null" and not isinstance(operand, bool):
                raise ValidationError(f"$null on {f.name!r} takes true or false")
            return (op, is_null), (
                None if not build else (col.is_(None) if is_null else col.is_not(None))
            )
        if op == "$contains":
            return self._contains(f, operand, table, values, build)
        if f.kind is Kind.JSON:
            raise ValidationError(f"operator {op} is not supported on JSON field {f.name!r}")
        if op in ("$in", "$nin"):
            return self._in(f, op, operand, col, values, build)
        if op == "$like":
            if f.kind is not Kind.STR or not isinstance(operand, str):
                raise ValidationError(f"$like needs a str field and a str pattern ({f.name!r})")
            bind = self._bind(values, operand, build, col)
            return (op,), (col.like(bind, escape=LIKE_ESCAPE) if build else None)
        bind = self._bind(values, self.codec.encode_scalar(f, operand), build, col)
        if not build:
            return (op,), None
        if op == "$eq":
            return (op,), col == bind
        if op == "$ne":
            clause = col != bind
            return (op,), (clause | col.is_(None)) if f.nullable else clause
        return (op,), getattr(col, _COMPARE[op])(bind)

    def _in(
        self, f: FieldInfo, op: str, operand: Any, col: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        if not isinstance(operand, list | tuple | set | frozenset):
            raise ValidationError(f"{op} on {f.name!r} takes a list")
        binds = [self._bind(values, self.codec.encode_scalar(f, v), build, col) for v in operand]
        shape = (op, len(binds))
        if not build:
            return shape, None
        import sqlalchemy as sa

        if not binds:
            return shape, (sa.false() if op == "$in" else sa.true())
        clause = col.in_(binds) if op == "$in" else col.not_in(binds)
        if op == "$nin" and f.nullable:
            clause = clause | col.is_(None)
        return shape, clause

    def _contains(
        self, f: FieldInfo, operand: Any, table: Any, values: list[Any], build: bool
    ) -> tuple[Any, Any]:
        if not f.is_list:
            raise ValidationError(f"$contains needs a list field; {f.name!r} is not one")
        if operand is None or isinstance(operand, dict | list):
            raise ValidationError(f"$contains on {f.name!r} takes one scalar element")
        dump_json(operand, f"$contains on {f.name!r}")
        builder, driver_value = self._membership(f.name, operand)
        bind = self._bind(values, driver_value, build, None)
        return ("$contains",), (builder(bind) if build else None)
