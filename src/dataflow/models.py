"""Turning annotated classes into model descriptions.

A model is described once, independently of any database: its fields, their
kinds, nullability, defaults and indexes. Dialects map the kinds to column
types when the table is built.
"""

from __future__ import annotations

import enum
import functools
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field
from datetime import datetime
from typing import Any

from dataflow.errors import ConfigurationError

__all__ = ["AUTO_FIELDS", "FieldInfo", "Index", "Kind", "ModelInfo", "build_model", "snake_case"]

AUTO_FIELDS = ("created_at", "updated_at")
NO_DEFAULT: Any = type("NoDefault", (), {"__repr__": lambda self: "NO_DEFAULT"})()
VERSION_FIELD = "version"


class Kind(enum.Enum):
    """The storage kind of a field; each dialect maps kinds to column types."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    JSON = "json"


_KINDS: dict[Any, Kind] = {
    str: Kind.STR,
    int: Kind.INT,
    float: Kind.FLOAT,
    bool: Kind.BOOL,
    datetime: Kind.DATETIME,
    dict: Kind.JSON,
    list: Kind.JSON,
}


@dataclass(frozen=True)
class Index:
    """An index a model declares.

    Args:
        fields: The indexed fields, in order.
        unique: Whether the combination must be unique.
        name: Index name; derived from table and fields when omitted.
        membership: Index a JSON list field for ``$contains`` look-ups
            (a GIN index on PostgreSQL, an indexed side table elsewhere).
    """

    fields: tuple[str, ...]
    unique: bool = False
    name: str | None = None
    membership: bool = False

    def __init__(
        self,
        *fields: str,
        unique: bool = False,
        name: str | None = None,
        membership: bool = False,
    ) -> None:
        object.__setattr__(self, "fields", tuple(fields))
        object.__setattr__(self, "unique", unique)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "membership", membership)


@dataclass(frozen=True)
class FieldInfo:
    """One field of a model."""

    name: str
    kind: Kind
    nullable: bool
    default: Any = NO_DEFAULT
    default_factory: Callable[[], Any] | None = None
    is_list: bool = False

    @property
    def has_default(self) -> bool:
        """Whether a value may be omitted on insert."""
        return self.nullable or self.default is not NO_DEFAULT or self.default_factory is not None

    def make_default(self) -> Any:
        """Return the value used when an insert omits this field."""
        if self.default_factory is not None:
            return self.default_factory()
        if self.default is not NO_DEFAULT:
            return _copy_default(self.default)
        return None


@dataclass
class ModelInfo:
    """Everything DataFlow knows about one model."""

    cls: type
    name: str
    table: str
    fields: dict[str, FieldInfo]
    indexes: tuple[Index, ...] = ()
    versioned: bool = False
    membership: tuple[str, ...] = field(default=())

    @functools.cached_property
    def writable(self) -> frozenset[str]:
        """Fields a caller may set (everything but the managed columns)."""
        managed = {*AUTO_FIELDS, VERSION_FIELD} if self.versioned else set(AUTO_FIELDS)
        return frozenset(n for n in self.fields if n not in managed)

    @functools.cached_property
    def insertable(self) -> frozenset[str]:
        """Fields an insert may set: the writable ones and ``created_at`` (for imports)."""
        return self.writable | {"created_at"}

    @functools.cached_property
    def keyed_fields(self) -> frozenset[str]:
        """The id and the fields of (non-membership) indexes: stored as key columns."""
        return frozenset(
            {"id"} | {n for idx in self.indexes if not idx.membership for n in idx.fields}
        )

    def side_table(self, field_name: str) -> str:
        """Name of the membership side table of a JSON list field."""
        return f"{self.table}__{field_name}"


def snake_case(name: str) -> str:
    """Convert ``CamelCase`` to ``snake_case`` (``HTTPRequest`` -> ``http_request``)."""
    step = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", step).lower()


def _copy_default(value: Any) -> Any:
    if isinstance(value, dict | list):
        return type(value)(value)
    return value


def _resolve(annotation: Any) -> tuple[Any, bool]:
    """Return the base type of an annotation and whether it is Optional."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise ConfigurationError(f"unsupported union annotation {annotation!r}")
        return _resolve(args[0])[0], True
    return (origin or annotation), False


def _field(cls: type, name: str, annotation: Any) -> FieldInfo:
    base, nullable = _resolve(annotation)
    kind = _KINDS.get(base)
    if kind is None:
        raise ConfigurationError(
            f"field {cls.__name__}.{name}: unsupported type {annotation!r} "
            "(use str, int, float, bool, datetime, dict or list, optionally Optional[...])"
        )
    default: Any = NO_DEFAULT
    factory: Callable[[], Any] | None = None
    dc_fields = getattr(cls, "__dataclass_fields__", {})
    if name in dc_fields:
        dc_field = dc_fields[name]
        if dc_field.default is not MISSING:
            default = dc_field.default
        if dc_field.default_factory is not MISSING:
            factory = dc_field.default_factory
    elif name in cls.__dict__:
        default = cls.__dict__[name]
    return FieldInfo(name, kind, nullable, default, factory, is_list=base is list)


def build_model(
    cls: type,
    *,
    table: str | None = None,
    indexes: Sequence[Index] = (),
    versioned: bool = False,
) -> ModelInfo:
    """Describe an annotated class as a model.

    Args:
        cls: The annotated class.
        table: Table name; defaults to the snake_case of the class name.
        indexes: Extra indexes to create.
        versioned: Add an integer ``version`` column for optimistic concurrency.

    Returns:
        The model description.

    Raises:
        ConfigurationError: The class lacks ``id: str`` or uses unsupported types.
    """
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError) as exc:  # an unresolvable or malformed annotation
        raise ConfigurationError(f"model {cls.__name__}: bad annotation ({exc})") from exc
    fields = {n: _field(cls, n, a) for n, a in hints.items() if not n.startswith("_")}
    id_field = fields.get("id")
    if id_field is None or id_field.kind is not Kind.STR or id_field.nullable:
        raise ConfigurationError(f"model {cls.__name__} must declare 'id: str' as primary key")
    for auto in AUTO_FIELDS:
        fields[auto] = FieldInfo(auto, Kind.DATETIME, nullable=False)
    if versioned:
        fields[VERSION_FIELD] = FieldInfo(VERSION_FIELD, Kind.INT, nullable=False, default=1)
    for index in indexes:
        _check_index(cls.__name__, index, fields)
    membership = tuple(i.fields[0] for i in indexes if i.membership)
    return ModelInfo(
        cls=cls,
        name=cls.__name__,
        table=table or snake_case(cls.__name__),
        fields=fields,
        indexes=tuple(indexes),
        versioned=versioned,
        membership=membership,
    )


def _check_index(model: str, index: Index, fields: dict[str, FieldInfo]) -> None:
    if not index.fields:
        raise ConfigurationError(f"model {model}: an index needs at least one field")
    for name in index.fields:
        if name not in fields:
            raise ConfigurationError(f"model {model}: index on unknown field {name!r}")
    if index.membership and (len(index.fields) != 1 or not fields[index.fields[0]].is_list):
        raise ConfigurationError(f"model {model}: a membership index covers exactly one list field")
