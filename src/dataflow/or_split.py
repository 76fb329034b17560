"""An ``$or`` under ORDER BY ... LIMIT as one query per branch, merged in order.

For databases whose planner answers ``a OR b`` with a walk of the ORDER BY
index (MySQL/MariaDB: ``Dialect.or_uses_indexes`` is False) instead of merging
the indexes of ``a`` and ``b``. The first ``offset + limit`` rows of the whole
are among the first ``offset + limit`` of some branch, so each branch is asked
for that many, and the union is deduplicated by id and ordered here exactly as
the database orders (NULL as the largest value, ``id`` breaking ties; text in
the binary collation MySQL columns use, which is code point order).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["merge_ordered", "or_branches"]


def or_branches(filter: Any) -> list[dict[str, Any]] | None:
    """The filters whose union ``filter`` is, when it has a top-level ``$or``; else None."""
    if not isinstance(filter, dict) or not isinstance(filter.get("$or"), list):
        return None
    branches = filter["$or"]
    if len(branches) < 2 or not all(isinstance(b, dict) and b for b in branches):
        return None  # let the filter compiler report a malformed $or
    rest = {k: v for k, v in filter.items() if k != "$or"}
    return [{"$and": [rest, b]} if rest else b for b in branches]


def merge_ordered(
    parts: Iterable[Sequence[dict[str, Any]]],
    order: Sequence[tuple[str, bool]],
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Rows of all ``parts`` (each already in ``order``), deduplicated by id, in
    ``order`` with ``id`` breaking ties, sliced to ``offset``/``limit``."""
    keys = list(order)
    if "id" not in (name for name, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))
    found: dict[Any, dict[str, Any]] = {}
    for part in parts:
        for row in part:
            found.setdefault(row["id"], row)

    def compare(a: dict[str, Any], b: dict[str, Any]) -> int:
        for name, desc in keys:
            x, y = a[name], b[name]
            if x == y:
                continue
            larger = y is not None and (x is None or x > y)  # NULL sorts as the largest
            return (-1 if larger else 1) if desc else (1 if larger else -1)
        return 0  # pragma: no cover - ids are unique and always a key

    ordered = sorted(found.values(), key=functools.cmp_to_key(compare))
    return ordered[offset : offset + limit]
