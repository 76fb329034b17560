"""Reading audit chains back from the database and verifying them page by page.

Each chain is checked against its request row as read in the same page: the
row's sealed columns must hold what the chain folds to.
"""

from __future__ import annotations

from typing import Any

from dataflow import DataFlow
from kaizen.governance._schema import ApprovalVoteRecord, audit_from_row, vote_from_row
from kaizen.governance._seal import SEALED
from kaizen.governance.audit import verify_chain
from kaizen.governance.models import AuditEvent, AuditProblem, AuditReport

__all__ = ["verify_all", "verify_one"]

_PAGE = 500
Chain = list[tuple[AuditEvent, str]]
#: Sealed field -> its column, where the names differ.
_COLUMNS = {
    "approvers": "approvers_json",
    "request_metadata": "request_metadata_json",
    "approved_metadata": "approved_metadata_json",
}
_POLICY = ("escalate_to", "timeout_seconds", "excluded_approvers")
_DEFAULTS = {"quorum": 1, "escalations": 0}
Votes = dict[str, list[Any]]
VOTE_MODEL = ApprovalVoteRecord.__name__


async def _votes(db: DataFlow, ids: list[str]) -> Votes:
    found: Votes = {}
    if ids:
        rows = await db.select(VOTE_MODEL, {"request_id": {"$in": ids}}, order_by="seq")
        for r in rows:
            found.setdefault(r["request_id"], []).append(vote_from_row(r))
    return found


async def verify_one(db: DataFlow, req: str, aud: str, request_id: str) -> AuditReport:
    """Verify the chain of one request."""
    report = AuditReport()
    rows = await db.select(aud, {"request_id": request_id}, order_by="seq")
    row = await db.get(req, request_id)
    if row is None and not rows:
        return report
    votes = await _votes(db, [request_id])
    _verify(request_id, [audit_from_row(r) for r in rows], row, votes, report)
    return report


def _verify(
    request_id: str,
    chain: Chain,
    row: dict[str, Any] | None,
    votes: Votes,
    report: AuditReport,
) -> None:
    if row is None:
        verify_chain(request_id, chain, None, report)
        return
    policy = row.get("policy_json") or {}
    values: dict[str, Any] = {}
    for name in SEALED:
        if name == "votes":
            values[name] = votes.get(request_id, [])
        elif name in _POLICY:
            values[name] = policy.get(name, [] if name != "timeout_seconds" else None)
        elif name in _DEFAULTS:
            values[name] = row.get(name) or _DEFAULTS[name]
        else:
            values[name] = row.get(_COLUMNS.get(name, name))
    verify_chain(request_id, chain, (row["audit_seq"], row["audit_head"]), report, values)


async def verify_all(db: DataFlow, req: str, aud: str) -> AuditReport:
    """Verify every chain in the audit table, then look for requests without events.

    Memory stays bounded: the audit table is read in keyset pages ordered by
    (request_id, seq), and the request table in pages of ids.
    """
    report = AuditReport()
    pending: dict[str, Chain] = {}
    async for chain in _chains(db, aud):
        pending[chain[0][0].request_id] = chain
        if len(pending) >= _PAGE:
            await _check(db, req, pending, report)
            pending = {}
    await _check(db, req, pending, report)
    await _rows_without_events(db, req, aud, report)
    return report


async def _chains(db: DataFlow, aud: str) -> Any:
    """Yield each request's events, in (request_id, seq) order."""
    current: Chain = []
    last: tuple[str, int] | None = None
    while True:
        filt: dict[str, Any] = {}
        if last is not None:
            filt = {
                "$or": [
                    {"request_id": {"$gt": last[0]}},
                    {"request_id": last[0], "seq": {"$gt": last[1]}},
                ]
            }
        rows = await db.select(aud, filt, order_by=["request_id", "seq"], limit=_PAGE)
        for row in rows:
            item = audit_from_row(row)
            if current and current[0][0].request_id != item[0].request_id:
                yield current
                current = []
            current.append(item)
        if len(rows) < _PAGE:
            break
        last = (rows[-1]["request_id"], rows[-1]["seq"])
    if current:
        yield current


async def _check(db: DataFlow, req: str, chains: dict[str, Chain], report: AuditReport) -> None:
    if not chains:
        return
    rows = await db.select(req, {"id": {"$in": list(chains)}})
    by_id = {r["id"]: r for r in rows}
    votes = await _votes(db, list(chains))
    for request_id, chain in chains.items():
        _verify(request_id, chain, by_id.get(request_id), votes, report)


async def _rows_without_events(db: DataFlow, req: str, aud: str, report: AuditReport) -> None:
    last: str | None = None
    while True:
        filt: dict[str, Any] = {"id": {"$gt": last}} if last is not None else {}
        rows = await db.select(req, filt, order_by="id", limit=_PAGE)
        if not rows:
            return
        ids = [r["id"] for r in rows]
        found = await db.select(aud, {"request_id": {"$in": ids}, "seq": 0})
        seen = {r["request_id"] for r in found}
        reported = {p.request_id for p in report.problems}
        for request_id in ids:
            if request_id not in seen and request_id not in reported:
                # Only an empty trail reaches here: a trail missing its first event
                # was already reported by the chain check.
                report.requests += 1
                report.problems.append(
                    AuditProblem(request_id, None, "request has no audit events")
                )
        if len(rows) < _PAGE:
            return
        last = ids[-1]
