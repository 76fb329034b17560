"""The targets (issues 5 and 15), checked against a results document."""

from __future__ import annotations

from typing import Any

__all__ = ["check_goals"]

#: Writes with a hand-written baseline (bench/expert.py), and the driver calls each may
#: make on PostgreSQL and MySQL: one, or a read the policy needs and then one.
WRITES = {
    "approvals.save": 1,
    "approvals.update": 2,
    "approvals.approve": 2,
    "approvals.quorum_vote": 2,
    "approvals.delegated_vote": 2,
    "approvals.timeout_sweep": 2,
    "sessions.save": 1,
    "sessions.update_session_state": 1,
    "sessions.cleanup_expired": 1,
}
#: Single-row reads (<= 1.2x raw on the servers).
READS = ("approvals.load", "sessions.load")
#: Lists of 100 rows, decoding included (<= 1.5x raw).
LISTS = (
    "approvals.list_by_status",
    "approvals.list_by_approver",
    "approvals.list_pending_for_agent",
    "approvals.list_involving",
    "approvals.get_expired_pending_requests",
    "sessions.list_active",
    "sessions.list_by_user",
)
#: Operations that must stay within 1.2x of their 1,000-row p50 at scale.
FLAT_AT_SCALE = (*LISTS, "sessions.cleanup_expired")
#: Votes that must cost at most this much of a single approver's ``approve`` p50, same run.
VOTES_VS_APPROVE = {"approvals.quorum_vote": 1.3, "approvals.delegated_vote": 1.3}
_RAW = {"postgresql": "asyncpg", "mysql": "asyncmy", "sqlite": "aiosqlite"}
_THROUGHPUT = {"postgresql": 0.9, "mysql": 0.9, "sqlite": 1.0}


def _goal(
    what: str, db: str | None, value: Any, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    met = None
    if isinstance(value, int | float):
        met = value <= limit if at_most else value >= limit
    return {"target": what, "database": db, "value": value, "limit": limit, "met": met}


def _database(name: str, d: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    driver = _RAW[name]
    for op in d.get("ops", []):
        key = f"{op['group']}.{op['op']}"
        ratios = op["ratio_p50"]
        if name == "sqlite":  # in process: every operation against both drivers
            goals.append(_goal(f"{key} p50 vs aiosqlite", name, ratios.get("aiosqlite"), 0.5))
            goals.append(_goal(f"{key} p50 vs sqlite3", name, ratios.get("sqlite3"), 1.5))
            continue
        if key in WRITES:
            goals.append(_goal(f"{key} p50 vs expert", name, ratios.get("expert"), 1.2))
            calls = op["statements_per_call"]
            goals.append(_goal(f"{key} driver calls", name, calls, WRITES[key]))
        elif key in READS:
            goals.append(_goal(f"{key} p50 vs {driver}", name, ratios.get(driver), 1.2))
        elif key in LISTS:
            goals.append(_goal(f"{key} (100 rows) p50 vs {driver}", name, ratios.get(driver), 1.5))
    goals += _votes(name, d)
    vs_base = (d.get("scale") or {}).get("vs_base", {})
    rows = (d.get("scale") or {}).get("rows")
    for key in FLAT_AT_SCALE:
        if key in vs_base:
            goals.append(
                _goal(f"{key} p50 at {rows:,} rows vs 1,000", name, vs_base[key]["ratio"], 1.2)
            )
    conc = d.get("concurrency") or {}
    if "throughput_ratio" in conc:
        goals.append(
            _goal(
                "concurrent throughput vs raw",
                name,
                conc["throughput_ratio"],
                _THROUGHPUT[name],
                at_most=False,
            )
        )
    rss = d.get("rss") or {}
    if "peak_mib" in rss:
        goals.append(
            _goal(f"peak RSS MiB, {rss['saves_each']} saves each", name, rss["peak_mib"], 45)
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
        goals.append(_goal("import of the three packages, ms", None, imp["median_ms"], 200))
    for name, d in results["databases"].items():
        if d.get("reachable") and name in _RAW:  # the clusters are measured, not targeted
            goals += _database(name, d)
    return goals
