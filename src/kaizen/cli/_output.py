"""Rendering command results: tables that fit 100 columns for people, JSON for scripts.

Text output shows values as people read them: ``yes``/``no`` for booleans, ``-`` for
nothing, JSON (not Python reprs) for dicts and lists, datetimes as ``2025-06-01
12:34Z`` in tables (seconds elsewhere), UTC. Tables and ``key  value`` lines are cut to
:data:`WIDTH` columns, long values ending in ``…``, unless ``--wide`` is given (the
command line sets it with :func:`use_wide`); ``--json`` prints every value in full.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TextIO

__all__ = ["WIDTH", "cell", "emit", "fit", "to_jsonable", "use_wide"]

#: The width tables and ``key  value`` lines fit in without ``--wide``.
WIDTH = 100
_GAP = 2
_ELLIPSIS = "…"
#: The first column is an id: kept whole up to a UUID's length while others can shrink.
_ID_WIDTH = 36
#: What other columns shrink to before ids and datetimes are cut.
_SOFT_FLOOR = 8
_HARD_FLOOR = 4
_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})

_wide: contextvars.ContextVar[bool] = contextvars.ContextVar("kaizen_cli_wide", default=False)


@contextmanager
def use_wide(wide: bool) -> Iterator[None]:
    """Within the block, :func:`emit` cuts nothing (``--wide``) or fits :data:`WIDTH`."""
    token = _wide.set(wide)
    try:
        yield
    finally:
        _wide.reset(token)


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


def _moment(value: datetime, *, seconds: bool) -> str:
    if value.utcoffset() is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def cell(value: Any, *, seconds: bool = True) -> str:
    """``value`` as people read it, on one line: ``-`` for None, ``yes``/``no``,
    compact JSON for dicts and lists, datetimes in UTC (``seconds=False``: to the minute)."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _moment(value, seconds=seconds)
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    return text.translate(_CONTROL)


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + _ELLIPSIS if width > 0 else ""


def fit(natural: Sequence[int], floors: Sequence[Sequence[int]], budget: int) -> list[int]:
    """Column widths within ``budget``: the widest column shrinks first, down to its
    floor of the first round, then of the next (each round a list of floors)."""
    widths = list(natural)
    excess = sum(widths) - budget
    for floor in floors:
        while excess > 0:
            shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda j: (widths[j], j))  # ties: the later column
            step = min(excess, widths[i] - floor[i], _step(widths, i))
            widths[i] -= step
            excess -= step
    return widths


def _step(widths: Sequence[int], i: int) -> int:
    """How far column ``i`` shrinks before it may no longer be the widest."""
    others = [w for j, w in enumerate(widths) if j != i]
    return max(widths[i] - max(others, default=0), 1)


def _table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    headers: Mapping[str, str],
    wide: bool,
) -> str:
    titles = [headers.get(c, c).upper() for c in columns]
    cells = [[cell(row.get(c), seconds=wide) for c in columns] for row in rows]
    natural = [max([len(t), *(len(r[i]) for r in cells)]) for i, t in enumerate(titles)]
    widths = natural
    if not wide:
        timely = [all(isinstance(row.get(c), datetime | None) for row in rows) for c in columns]
        soft = [
            n if timely[i] else min(n, _ID_WIDTH if i == 0 else max(len(titles[i]), _SOFT_FLOOR))
            for i, n in enumerate(natural)
        ]
        hard = [min(n, _HARD_FLOOR) for n in natural]
        widths = fit(natural, [soft, hard], WIDTH - _GAP * (len(columns) - 1))
    lines = [titles, *cells]
    return "\n".join(
        (" " * _GAP).join(_cut(v, w).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _pairs(data: Mapping[str, Any], wide: bool) -> str:
    width = max((len(str(k)) for k in data), default=0)
    room = max(WIDTH - width - _GAP, _HARD_FLOOR)
    lines = []
    for key, value in data.items():
        text = cell(value)
        lines.append(f"{str(key).ljust(width)}{' ' * _GAP}{text if wide else _cut(text, room)}")
    return "\n".join(lines)


def emit(
    out: TextIO,
    data: Any,
    *,
    as_json: bool,
    columns: Sequence[str] | None = None,
    wide_columns: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
    empty: str = "(none)",
    wide: bool | None = None,
) -> None:
    """Print ``data``: JSON when asked, else a table (lists) or ``key  value`` lines (dicts).

    Args:
        out: Where to write.
        data: A list of rows, a mapping, or one value.
        as_json: Print JSON (every value in full).
        columns: The table's columns (default: the first row's keys).
        wide_columns: Columns added with ``--wide``.
        headers: Column titles other than the column names.
        empty: What an empty list prints.
        wide: Cut nothing (default: as ``--wide`` says, see :func:`use_wide`).
    """
    if as_json:
        out.write(json.dumps(to_jsonable(data), ensure_ascii=False, indent=2) + "\n")
        return
    wide = _wide.get() if wide is None else wide
    if isinstance(data, list):
        if not data:
            out.write(empty + "\n")
            return
        shown = [*(columns or list(data[0])), *(wide_columns if wide else ())]
        out.write(_table(data, shown, headers or {}, wide) + "\n")
        return
    if isinstance(data, Mapping):
        if data:
            out.write(_pairs(data, wide) + "\n")
        return
    out.write(f"{cell(data)}\n")
