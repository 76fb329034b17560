"""Rendering command results: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TextIO

__all__ = ["cell", "emit", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses' dicts, enums and datetimes into JSON-ready values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def cell(value: Any) -> str:
    """``value`` as one table cell: ``-`` for None, compact JSON for dicts and lists."""
    value = to_jsonable(value)
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(
    out: TextIO,
    data: Any,
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    empty: str = "(none)",
) -> None:
    """Print ``data``: JSON when asked, else a table (lists) or ``key: value`` lines (dicts)."""
    if as_json:
        out.write(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2) + "\n")
        return
    if isinstance(data, list):
        if not data:
            out.write(empty + "\n")
            return
        out.write(_table(data, columns or list(data[0])) + "\n")
        return
    if isinstance(data, Mapping):
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            out.write(f"{str(key).ljust(width)}  {cell(value)}\n")
        return
    out.write(f"{cell(data)}\n")
