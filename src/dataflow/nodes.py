"""The 11 generated operations ("nodes") of every model.

Each node is an object with an async ``execute(**params)``; ``db.nodes`` maps
``"{Model}{Operation}Node"`` to it. Parameters and results:

==================  ===========================================  ==============================
node                parameters                                   result
==================  ===========================================  ==============================
CreateNode          the record's fields                          the stored record (dict)
ReadNode            ``id``                                       the record, or None
UpdateNode          ``id``, ``fields`` (dict)                    the updated record
DeleteNode          ``id``                                       True if it existed
ListNode            ``filter``, ``order_by``, ``limit``,         list of records
                    ``offset`` (all optional)
UpsertNode          the record's fields (``id`` required)        the stored record
CountNode           ``filter`` (optional)                        int
BulkCreateNode      ``records`` (list of dicts)                  int inserted (all or none)
BulkUpdateNode      ``filter``, ``fields``                       int rows matched
BulkDeleteNode      ``filter``; ``{}`` needs ``confirm_all=True``  int rows deleted
BulkUpsertNode      ``records`` (list of dicts)                  int records written
==================  ===========================================  ==============================

``UpdateNode`` raises :class:`~dataflow.errors.NotFoundError` for an unknown id;
``CreateNode`` raises :class:`~dataflow.errors.DuplicateKeyError` for a taken one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dataflow.errors import NotFoundError, ValidationError
from dataflow.jsonvalues import describe

if TYPE_CHECKING:
    from dataflow.core import DataFlow

__all__ = ["OPERATIONS", "Node", "make_nodes"]


def _only(params: dict[str, Any], allowed: set[str], node: str) -> None:
    unknown = set(params) - allowed
    if unknown:
        raise ValidationError(f"{node}: unknown parameter(s) {', '.join(sorted(unknown))}")


def _required(params: dict[str, Any], name: str, node: str) -> Any:
    if name not in params:
        raise ValidationError(f"{node}: missing parameter {name!r}")
    return params[name]


async def _create(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    return await db.insert(model, p)


async def _read(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"id"}, node)
    return await db.get(model, _required(p, "id", node))


async def _update(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"id", "fields"}, node)
    record_id = _required(p, "id", node)
    result = await db.update(model, record_id, _required(p, "fields", node))
    if result is None:
        raise NotFoundError(f"{model} {describe(record_id)} does not exist")
    return result


async def _delete(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"id"}, node)
    return await db.delete(model, _required(p, "id", node))


async def _list(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"filter", "order_by", "limit", "offset"}, node)
    return await db.select(
        model,
        p.get("filter"),
        order_by=p.get("order_by"),
        limit=p.get("limit"),
        offset=p.get("offset", 0),
    )


async def _upsert(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _required(p, "id", node)
    return await db.upsert(model, p)


async def _count(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"filter"}, node)
    return await db.count(model, p.get("filter"))


async def _bulk_create(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"records"}, node)
    return await db.insert_many(model, _records(p, node))


async def _bulk_update(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"filter", "fields"}, node)
    return await db.update_where(model, _required(p, "filter", node), _required(p, "fields", node))


async def _bulk_delete(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"filter", "confirm_all"}, node)
    filt = _required(p, "filter", node)
    if filt == {} and p.get("confirm_all") is not True:
        raise ValidationError(f"{node}: an empty filter deletes everything; pass confirm_all=True")
    return await db.delete_where(model, filt)


async def _bulk_upsert(db: DataFlow, model: str, node: str, p: dict[str, Any]) -> Any:
    _only(p, {"records"}, node)
    return await db.upsert_many(model, _records(p, node))


def _records(p: dict[str, Any], node: str) -> list[Any]:
    records = _required(p, "records", node)
    if not isinstance(records, list | tuple):
        raise ValidationError(f"{node}: 'records' must be a list of dicts")
    return list(records)


Handler = Callable[["DataFlow", str, str, dict[str, Any]], Awaitable[Any]]

OPERATIONS: dict[str, Handler] = {
    "Create": _create,
    "Read": _read,
    "Update": _update,
    "Delete": _delete,
    "List": _list,
    "Upsert": _upsert,
    "Count": _count,
    "BulkCreate": _bulk_create,
    "BulkUpdate": _bulk_update,
    "BulkDelete": _bulk_delete,
    "BulkUpsert": _bulk_upsert,
}


class Node:
    """One generated operation of one model, bound to a DataFlow."""

    def __init__(self, db: DataFlow, model: str, operation: str) -> None:
        self.db = db
        self.model = model
        self.operation = operation
        self.name = f"{model}{operation}Node"
        self._handler = OPERATIONS[operation]

    async def execute(self, **params: Any) -> Any:
        """Run the operation (see the module docs for parameters and results)."""
        return await self._handler(self.db, self.model, self.name, params)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def make_nodes(db: DataFlow, model: str) -> dict[str, Node]:
    """The 11 nodes of ``model``, keyed by name."""
    return {f"{model}{op}Node": Node(db, model, op) for op in OPERATIONS}
