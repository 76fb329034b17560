"""The DataFlow models behind the approval storage (requests, audit, votes), and row
conversions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dataflow import ConfigurationError, DataFlow, Index
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    ExternalAgentApprovalRequest,
    Vote,
)

__all__ = [
    "AUDIT_TABLE",
    "REQUEST_TABLE",
    "VOTE_TABLE",
    "ApprovalAuditRecord",
    "ApprovalRequestRecord",
    "ApprovalVoteRecord",
    "CHANGE_COLUMNS",
    "audit_from_row",
    "audit_row",
    "change_values",
    "register_models",
    "register",
    "request_from_row",
    "request_row",
    "vote_from_row",
    "vote_row",
]

REQUEST_TABLE = "external_agent_approval_request"
AUDIT_TABLE = "external_agent_approval_audit"
VOTE_TABLE = "external_agent_approval_vote"


class ApprovalRequestRecord:
    """A row of ``external_agent_approval_request`` (the spec's columns plus ours)."""

    id: str
    external_agent_id: str
    requested_by: str
    approvers_json: list[Any] = []  # noqa: RUF012 - a DataFlow default, copied per row
    status: str = "pending"
    approval_reason: str | None = None
    request_metadata_json: dict[str, Any] = {}  # noqa: RUF012 - a DataFlow default
    approved_at: datetime | None = None
    approved_by: str | None = None
    rejection_reason: str | None = None
    deadline_at: datetime | None = None
    # seq and hash of the request's latest audit event (see kaizen.governance.audit).
    audit_seq: int = 0
    audit_head: str = ""
    # The policy frozen into the request, and its escalation state (added with
    # quorums: optional, as existing tables gain them as columns; None = 1 / [] / 0).
    quorum: int | None = None
    policy_json: dict[str, Any] | None = None
    escalations: int | None = None
    approved_metadata_json: dict[str, Any] | None = None


class ApprovalVoteRecord:
    """A row of ``external_agent_approval_vote``: one recorded vote, never updated.

    ``counts_for`` is whose vote it is (the delegator for a delegate's vote); one
    vote per voter and one per ``counts_for`` and request (unique indexes).
    """

    id: str
    request_id: str
    seq: int
    approver_id: str
    counts_for: str
    on_behalf_of: str | None = None
    decision: str
    voted_at: datetime
    comment: str | None = None
    metadata_json: dict[str, Any] | None = None


class ApprovalAuditRecord:
    """A row of ``external_agent_approval_audit``: append-only, never updated."""

    id: str
    request_id: str
    seq: int
    event: str
    actor: str
    occurred_at: datetime
    # Canonical JSON text, hashed byte for byte (a JSON column may re-format numbers).
    details: str
    prev_hash: str
    hash: str


_REQUEST_INDEXES = [
    Index("status", "created_at"),
    Index("external_agent_id", "status", "created_at"),
    Index("status", "deadline_at"),
    Index("created_at"),
    Index("requested_by", "created_at"),
    Index("approved_by", "created_at"),
    Index("approvers_json", membership=True),
]
_AUDIT_INDEXES = [Index("request_id", "seq", unique=True)]
_VOTE_INDEXES = [
    Index("request_id", "seq"),
    Index("request_id", "approver_id", unique=True),
    Index("request_id", "counts_for", unique=True),
    Index("approver_id", "voted_at"),
]


def register(db: DataFlow) -> tuple[str, str, str]:
    """Register the three models on ``db`` once; return their model names."""
    register_models(
        db,
        (
            (ApprovalRequestRecord, REQUEST_TABLE, _REQUEST_INDEXES),
            (ApprovalAuditRecord, AUDIT_TABLE, _AUDIT_INDEXES),
            (ApprovalVoteRecord, VOTE_TABLE, _VOTE_INDEXES),
        ),
    )
    return (
        ApprovalRequestRecord.__name__,
        ApprovalAuditRecord.__name__,
        ApprovalVoteRecord.__name__,
    )


def register_models(db: DataFlow, models: tuple[tuple[type, str, list[Index]], ...]) -> None:
    """Register each ``(class, table, indexes)`` on ``db`` unless it is already.

    Raises:
        ConfigurationError: A model name is taken on ``db`` by another class.
    """
    known = db.models
    for cls, table, indexes in models:
        found = known.get(cls.__name__)
        if found is None:
            db.model(table=table, indexes=indexes)(cls)
        elif found is not cls:
            raise ConfigurationError(
                f"model name {cls.__name__!r} is taken on this DataFlow by another class"
            )


def request_row(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """The writable columns of ``request`` (identity and audit columns excluded)."""
    return {
        "external_agent_id": request.external_agent_id,
        "requested_by": request.requested_by,
        "approvers_json": list(request.approvers),
        "status": request.status.value,
        "approval_reason": request.approval_reason,
        "request_metadata_json": dict(request.request_metadata),
        "approved_at": request.approved_at,
        "approved_by": request.approved_by,
        "rejection_reason": request.rejection_reason,
        "deadline_at": request.deadline_at,
        "quorum": request.quorum,
        "policy_json": {
            "escalate_to": list(request.escalate_to),
            "timeout_seconds": request.timeout_seconds,
            "excluded_approvers": list(request.excluded_approvers),
        },
        "escalations": request.escalations,
        "approved_metadata_json": request.approved_metadata,
    }


#: Request field -> (column, how its value is stored), for the fields a change sets.
CHANGE_COLUMNS = {
    "approvers": "approvers_json",
    "approved_metadata": "approved_metadata_json",
}


def change_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The column values of a change's request fields."""
    return {
        CHANGE_COLUMNS.get(name, name): value.value if isinstance(value, ApprovalStatus) else value
        for name, value in fields.items()
    }


#: Status value -> member: a dict look-up instead of the enum's call per row.
_STATUSES = {status.value: status for status in ApprovalStatus}


def request_from_row(
    row: dict[str, Any], votes: list[Vote] | None = None
) -> ExternalAgentApprovalRequest:
    """Build the request a stored row describes (with ``votes``, oldest first).

    Lists and dicts are copied, so the request shares nothing with ``row``.
    """
    status = row["status"]
    approvers = row["approvers_json"]
    metadata = row["request_metadata_json"]
    policy = row.get("policy_json")
    if policy:
        escalate_to = policy.get("escalate_to")
        excluded = policy.get("excluded_approvers")
        timeout_seconds = policy.get("timeout_seconds")
    else:
        escalate_to = excluded = timeout_seconds = None
    # Positional, in field order (the dataclass's generated __init__ matches arguments
    # fastest so; tests/governance/test_rows.py checks every field lands where it should).
    return ExternalAgentApprovalRequest(
        row["id"],
        row["external_agent_id"],
        row["requested_by"],
        list(approvers) if approvers else [],
        _STATUSES.get(status) or ApprovalStatus(status),
        row["approval_reason"],
        dict(metadata) if metadata else {},
        row["created_at"],
        row["approved_at"],
        row["approved_by"],
        row["rejection_reason"],
        row["deadline_at"],
        row.get("quorum") or 1,
        list(escalate_to) if escalate_to else [],
        row.get("escalations") or 0,
        timeout_seconds,
        list(excluded) if excluded else [],
        row.get("approved_metadata_json"),
        votes or [],
        row["audit_seq"],
        row["audit_head"],
    )


def vote_row(event: AuditEvent, vote: Vote) -> dict[str, Any]:
    """The row storing ``vote``, recorded by ``event`` (whose hash is its id)."""
    return {
        "id": event.hash,
        "request_id": event.request_id,
        "seq": event.seq,
        "approver_id": vote.approver_id,
        "counts_for": vote.counts_for,
        "on_behalf_of": vote.on_behalf_of,
        "decision": vote.decision,
        "voted_at": vote.at,
        "comment": vote.comment,
        "metadata_json": vote.metadata,
    }


def vote_from_row(row: dict[str, Any]) -> Vote:
    """The vote a stored row describes."""
    return Vote._restore(
        {
            "approver_id": row["approver_id"],
            "decision": row["decision"],
            "at": row["voted_at"],
            "comment": row["comment"],
            "on_behalf_of": row["on_behalf_of"],
            "metadata": row["metadata_json"],
        }
    )


def audit_row(event: AuditEvent, details_json: str) -> dict[str, Any]:
    """The row storing ``event``."""
    return {
        "id": event.hash,
        "request_id": event.request_id,
        "seq": event.seq,
        "event": event.event,
        "actor": event.actor,
        "occurred_at": event.occurred_at,
        "details": details_json,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def audit_from_row(row: dict[str, Any]) -> tuple[AuditEvent, str]:
    """The event a stored audit row describes, with its details JSON as stored."""
    details_json = row["details"]
    try:
        details = json.loads(details_json)
    except ValueError:
        details = {"unparsable": details_json}
    event = AuditEvent(
        row["request_id"],
        row["seq"],
        row["event"],
        row["actor"],
        row["occurred_at"],
        details if isinstance(details, dict) else {"value": details},
        row["prev_hash"],
        row["hash"],
    )
    return event, details_json
