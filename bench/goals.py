"""The targets of issue 5, checked against a results document."""

from __future__ import annotations

from typing import Any

__all__ = ["check_goals"]

#: Operations that touch one row (the 1.5x / 1.0x target).
SINGLE_ROW = {
    "approvals": ("save", "load", "update", "approve"),
    "sessions": ("save", "load", "update_session_state"),
}
#: Operations that must stay within 2x of their 1,000-row p50 at scale.
FLAT_AT_SCALE = (
    "approvals.list_by_status",
    "approvals.list_by_approver",
    "approvals.list_pending_for_agent",
    "approvals.list_involving",
    "approvals.get_expired_pending_requests",
    "sessions.list_active",
    "sessions.list_by_user",
    "sessions.cleanup_expired",
)
#: Votes that must cost at most this much of a single approver's ``approve`` p50, same run.
VOTES_VS_APPROVE = {"approvals.quorum_vote": 1.3, "approvals.delegated_vote": 1.3}
_RAW = {"postgresql": ("asyncpg", 1.5), "mysql": ("asyncmy", 1.5), "sqlite": ("aiosqlite", 1.0)}


def _goal(
    what: str, db: str | None, value: Any, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    met = None
    if isinstance(value, int | float):
        met = value <= limit if at_most else value >= limit
    return {"target": what, "database": db, "value": value, "limit": limit, "met": met}


def _database(name: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    driver, limit = _RAW[name]
    for op in d.get("ops", []):
        if op["op"] in SINGLE_ROW.get(op["group"], ()):
            ratio = op["ratio_p50"].get(driver)
            goals.append(_goal(f"{op['group']}.{op['op']} p50 vs {driver}", name, ratio, limit))
    goals += _votes(name, d)
    vs_base = (d.get("scale") or {}).get("vs_base", {})
    rows = (d.get("scale") or {}).get("rows")
    for key in FLAT_AT_SCALE:
        if key in vs_base:
            goals.append(
                _goal(f"{key} p50 at {rows:,} rows vs 1,000", name, vs_base[key]["ratio"], 2.0)
            )
    conc = d.get("concurrency") or {}
    if "throughput_ratio" in conc:
        goals.append(
            _goal(
                "concurrent throughput vs raw", name, conc["throughput_ratio"], 0.8, at_most=False
            )
        )
    rss = d.get("rss") or {}
    if "peak_mib" in rss:
        goals.append(
            _goal(f"peak RSS MiB, {rss['saves_each']} saves each", name, rss["peak_mib"], 50)
        )
    return goals


def _votes(name: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    """The vote operations against ``approvals.approve`` (ours, p50) on the same database:
    from their interleaved timing when there is one, else from the operations."""
    interleaved = (d.get("votes") or {}).get("ratio_vs_approve")
    if interleaved is not None:
        ratios = {f"approvals.{op}": r for op, r in interleaved.items()}
    else:
        p50 = {
            f"{op['group']}.{op['op']}": (op.get("ours") or {}).get("p50_ms")
            for op in d.get("ops", [])
        }
        approve = p50.get("approvals.approve")
        ratios = {k: v / approve if v and approve else None for k, v in p50.items()}
    return [
        _goal(f"{key} p50 vs approvals.approve", name, ratios[key], limit)
        for key, limit in VOTES_VS_APPROVE.items()
        if key in ratios
    ]


def check_goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per measured target: what, database, value, limit, met (None: no value)."""
    goals = []
    imp = results.get("import") or {}
    if "median_ms" in imp:
        goals.append(_goal("import of the three packages, ms", None, imp["median_ms"], 300))
    for name, d in results["databases"].items():
        if d.get("reachable") and name in _RAW:  # the clusters are measured, not targeted
            goals += _database(name, d)
    return goals
