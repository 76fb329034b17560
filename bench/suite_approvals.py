"""Approval requests: the storage's operations, the decision and the timeout sweep.

Generated rows follow a fixed shape at every table size: ``HOT_ROWS`` pending
requests of agent ``agent-hot`` listing approver ``lead-hot``; the rest spread
over 10,000 agents and 500 approvers, 5 % pending. Pending rows were created
2 hours to 7 days ago with deadlines 30 days later, so the read-only
``get_expired_pending_requests`` finds them and the timeout sweep does not.
Approver ``lead-bench`` has delegated to ``deputy-bench`` (stored, as every
instance reads it), for the delegated vote.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from bench.bulk import grow_table
from bench.runner import Op, Step
from bench.suite import HOT_ROWS, now
from bench.targets import Target
from dataflow import DataFlow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
)

__all__ = ["ApprovalSuite"]

REQUEST_MODEL = "ApprovalRequestRecord"
AUDIT_MODEL = "ApprovalAuditRecord"
VOTE_MODEL = "ApprovalVoteRecord"
#: The approver of the decision operations, and their delegate.
APPROVER = "lead-bench"
DEPUTY = "deputy-bench"
_PENDING = ApprovalStatus.PENDING
_CYCLE = ["pending"] + ["approved"] * 12 + ["rejected"] * 5 + ["timeout"] * 2
_METADATA_JSON = '{"environment":"production","cost":15.0}'  # serialized once for all rows
#: Overdue requests the timeout sweep finds per call.
SWEEP_BATCH = 10


def request_row(k: int, base: datetime) -> dict[str, Any]:
    """Row ``k`` of the generated table (the storage's column layout)."""
    hot = k < HOT_ROWS
    status = "pending" if hot else _CYCLE[k % len(_CYCLE)]
    created = base - timedelta(seconds=7200 + (k * 7) % 597_600)
    approvers = ["lead-hot", f"lead-{k % 50}"] if hot else [f"lead-{k % 500}"]
    decided = status != "pending"
    return {
        "id": f"req-{k:08d}",
        "external_agent_id": "agent-hot" if hot else f"agent-{k % 10_000}",
        "requested_by": f"user-{k % 5_000}",
        "approvers_json": approvers,
        "status": status,
        "approval_reason": "External agent invocation requires approval",
        "request_metadata_json": _METADATA_JSON,
        "approved_at": created + timedelta(minutes=5) if decided else None,
        "approved_by": approvers[0] if status in ("approved", "rejected") else None,
        "rejection_reason": "too expensive" if status == "rejected" else None,
        "deadline_at": created + timedelta(days=30),
        "audit_seq": 0,
        "audit_head": "0" * 64,
        "created_at": created,
        "updated_at": created,
    }


def new_request(
    rid: str, *, deadline: datetime | None = None, quorum: int = 1
) -> ExternalAgentApprovalRequest:
    """A fresh pending request as the manager would build it."""
    created = now()
    return ExternalAgentApprovalRequest(
        id=rid,
        external_agent_id="agent-bench",
        requested_by="user-bench",
        approvers=[APPROVER, "lead-hot"],
        status=_PENDING,
        approval_reason="External agent invocation requires approval",
        request_metadata={"environment": "production", "cost": 15.0},
        created_at=created,
        deadline_at=deadline or created + timedelta(hours=1),
        quorum=quorum,
    )


class ApprovalSuite:
    """Approval storage and manager operations on one database."""

    group = "approvals"

    def __init__(self, db: DataFlow, target: Target) -> None:
        self.db = db
        self.target = target
        self.storage = ExternalAgentApprovalStorage(db)
        self.manager = ExternalAgentApprovalManager(storage_backend=self.storage)
        self.rows = 0
        self.base = now()

    # -- data --------------------------------------------------------------

    async def populate(self, rows: int) -> None:
        await self.grow(rows)
        await self.manager.delegate(APPROVER, to=DEPUTY)

    async def grow(self, rows: int) -> float:
        """Bulk-load generated rows up to ``rows`` in total; return seconds taken."""
        if rows <= self.rows:
            return 0.0
        seconds = await grow_table(
            self.db, self.target, REQUEST_MODEL, request_row, self.rows, rows, self.base
        )
        self.rows = rows
        return seconds

    async def _forget(self, ids: list[str]) -> None:
        """Remove requests, their votes and audit trails (side rows go by cascade)."""
        await self.db.delete_where(VOTE_MODEL, {"request_id": {"$in": ids}})
        await self.db.delete_where(AUDIT_MODEL, {"request_id": {"$in": ids}})
        await self.db.delete_where(REQUEST_MODEL, {"id": {"$in": ids}})

    def _overdue_row(self, rid: str) -> dict[str, Any]:
        """A pending request whose deadline passed a day before the run began."""
        created = self.base - timedelta(days=2)
        return {
            "id": rid,
            "external_agent_id": "agent-bench",
            "requested_by": "user-bench",
            "approvers_json": [APPROVER],
            "status": "pending",
            "approval_reason": "External agent invocation requires approval",
            "request_metadata_json": {"cost": 15.0},
            "deadline_at": created + timedelta(days=1),
            "audit_seq": 0,
            "audit_head": "0" * 64,
        }

    # -- operations ----------------------------------------------------------

    def ops(self) -> list[Op]:
        s, m = self.storage, self.manager
        fixture = max(1, self.rows)

        async def forget(arg: Any) -> None:
            await self._forget([arg.id])

        async def save_pending(arg: Any) -> None:
            await s.save(dataclasses.replace(arg, approvers=list(arg.approvers)))

        def pair(i: int) -> tuple[ExternalAgentApprovalRequest, ExternalAgentApprovalRequest]:
            req = new_request(f"upd-{i}")
            changed = dataclasses.replace(
                req, approval_reason="Updated reason", request_metadata={"cost": 20.0}
            )
            return req, changed

        async def pair_setup(arg: Any) -> None:
            await save_pending(arg[0])

        async def pair_teardown(arg: Any) -> None:
            await self._forget([arg[0].id])

        async def sweep_setup(ids: list[str]) -> None:
            await self.db.insert_many(REQUEST_MODEL, [self._overdue_row(rid) for rid in ids])

        async def sweep_teardown(ids: list[str]) -> None:
            await self._forget(ids)

        async def sweep(ids: list[str]) -> int:
            return len((await m.sweep_overdue()).timed_out)

        return [
            Op("save", s.save, make=lambda i: new_request(f"new-{i}"), teardown=forget),
            Op("load", lambda i: s.load(f"req-{i % fixture:08d}")),
            Op(
                "update",
                lambda a: s.update(a[1]),
                make=pair,
                setup=pair_setup,
                teardown=pair_teardown,
                note="overwrite + audit event (conditional on the audit seq)",
            ),
            Op(
                "approve",
                lambda a: m.approve_request(a.id, APPROVER),
                make=lambda i: new_request(f"dec-{i}"),
                setup=save_pending,
                teardown=forget,
                note="manager.approve_request: conditional decision + vote + audit + NOTIFY",
            ),
            *self.vote_ops(save_pending, forget),
            *self.scale_ops(),
            Op(
                "timeout_sweep",
                sweep,
                make=lambda i: [f"swp-{i}-{j}" for j in range(SWEEP_BATCH)],
                setup=sweep_setup,
                teardown=sweep_teardown,
                weight=0.25,
                note=f"manager.sweep_overdue() timing out {SWEEP_BATCH} overdue requests",
            ),
        ]

    def vote_ops(self, setup: Step, teardown: Step) -> list[Op]:
        """Votes beside ``approve`` (a single approver's deciding vote): a vote that
        leaves a quorum-2 request pending, and a delegate's deciding vote."""
        m = self.manager
        return [
            Op(
                "quorum_vote",
                lambda a: m.approve_request(a.id, APPROVER),
                make=lambda i: new_request(f"quo-{i}", quorum=2),
                setup=setup,
                teardown=teardown,
                note="approve_request on a quorum-2 request: the first vote (vote + audit)",
            ),
            Op(
                "delegated_vote",
                lambda a: m.approve_request(a.id, DEPUTY),
                make=lambda i: new_request(f"dlg-{i}"),
                setup=setup,
                teardown=teardown,
                note=f"approve_request by {DEPUTY} for {APPROVER}: + the delegation lookup",
            ),
        ]

    def scale_ops(self) -> list[Op]:
        s = self.storage
        return [
            Op("list_by_status", lambda i: s.list_by_status(_PENDING, limit=100), weight=0.25),
            Op(
                "list_by_approver",
                lambda i: s.list_by_approver("lead-hot", _PENDING, limit=100),
                weight=0.25,
                note="pending, the approver's inbox",
            ),
            Op(
                "list_pending_for_agent",
                lambda i: s.list_pending_for_agent("agent-hot", limit=100),
                weight=0.25,
            ),
            Op(
                "list_involving",
                lambda i: s.list(involving="lead-hot", limit=100),
                weight=0.25,
                note="what a non-admin sees: made by them or routed to them, any status",
            ),
            Op(
                "list_involving_quiet",
                lambda i: s.list(involving="user-7", limit=100),
                weight=0.25,
                note="a requester with few requests, spread over the table: where a plan "
                "walking the created_at index would scan",
            ),
            Op(
                "list_decided_by",
                lambda i: s.list(decided_by="lead-7", limit=100),
                weight=0.25,
                note="the inbox's decided tab",
            ),
            Op("count_by_status", lambda i: s.count_by_status(_PENDING), weight=0.25),
            Op(
                "get_expired_pending_requests",
                lambda i: s.get_expired_pending_requests(3600, limit=100),
                weight=0.25,
            ),
        ]
