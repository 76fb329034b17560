"""Query plans of captured statements, so a slow operation at scale shows why.

The statements come from the capture pass (exact SQL and arguments); only
``EXPLAIN`` is sent, so nothing is executed or changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.capture import Stmt
from bench.targets import Target, connect_raw

__all__ = ["explain"]

_EXPLAINABLE = ("SELECT", "UPDATE", "DELETE")


async def _plan(target: Target, conn: Any, stmt: Stmt) -> list[str]:
    if target.family == "postgresql":
        rows = await conn.fetch("EXPLAIN " + stmt.sql, *stmt.args)
        return [str(r[0]) for r in rows]
    if target.family == "mysql":
        async with conn.cursor() as cur:
            await cur.execute("EXPLAIN " + stmt.sql, stmt.args)
            names = [d[0] for d in cur.description]
            rows = await cur.fetchall()
        keep = ("table", "type", "possible_keys", "key", "rows", "Extra")
        return [
            " ".join(f"{n}={v}" for n, v in zip(names, r, strict=False) if n in keep) for r in rows
        ]
    rows = conn.execute("EXPLAIN QUERY PLAN " + stmt.sql, stmt.args).fetchall()
    return [str(r[-1]) for r in rows]


async def explain(target: Target, statements: Sequence[Stmt]) -> list[dict[str, Any]]:
    """The plan of each query or data change among ``statements``."""
    driver = {"postgresql": "asyncpg", "mysql": "asyncmy"}.get(target.family, "sqlite3")
    conn = await connect_raw(target, driver)
    plans = []
    try:
        for stmt in statements:
            verb = stmt.sql.lstrip()[:6].upper()
            if stmt.method not in ("fetch", "execute") or verb not in _EXPLAINABLE:
                continue
            try:
                plan = await _plan(target, conn, stmt)
            except Exception as exc:  # a plan is a diagnostic; never fail the run for it
                plan = [f"EXPLAIN failed: {type(exc).__name__}: {exc}"]
            plans.append({"sql": stmt.sql, "plan": plan})
    finally:
        if target.family == "postgresql":
            await conn.close()
        else:
            conn.close()
    return plans
