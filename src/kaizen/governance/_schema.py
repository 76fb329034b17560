"""The two DataFlow models behind the approval storage, and row conversions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dataflow import ConfigurationError, DataFlow, Index
from kaizen.governance.models import ApprovalStatus, AuditEvent, ExternalAgentApprovalRequest

__all__ = [
    "AUDIT_TABLE",
    "REQUEST_TABLE",
    "ApprovalAuditRecord",
    "ApprovalRequestRecord",
    "audit_from_row",
    "audit_row",
    "register",
    "request_from_row",
    "request_row",
]

REQUEST_TABLE = "external_agent_approval_request"
AUDIT_TABLE = "external_agent_approval_audit"


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


def register(db: DataFlow) -> tuple[str, str]:
    """Register both models on ``db`` once; return their model names."""
    models = db.models
    for cls, table, indexes in (
        (ApprovalRequestRecord, REQUEST_TABLE, _REQUEST_INDEXES),
        (ApprovalAuditRecord, AUDIT_TABLE, _AUDIT_INDEXES),
    ):
        found = models.get(cls.__name__)
        if found is None:
            db.model(table=table, indexes=indexes)(cls)
        elif found is not cls:
            raise ConfigurationError(
                f"model name {cls.__name__!r} is taken on this DataFlow by another class"
            )
    return ApprovalRequestRecord.__name__, ApprovalAuditRecord.__name__


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
    }


def request_from_row(row: dict[str, Any]) -> ExternalAgentApprovalRequest:
    """Build the request a stored row describes."""
    return ExternalAgentApprovalRequest(
        id=row["id"],
        external_agent_id=row["external_agent_id"],
        requested_by=row["requested_by"],
        approvers=list(row["approvers_json"] or []),
        status=ApprovalStatus(row["status"]),
        approval_reason=row["approval_reason"],
        request_metadata=dict(row["request_metadata_json"] or {}),
        created_at=row["created_at"],
        approved_at=row["approved_at"],
        approved_by=row["approved_by"],
        rejection_reason=row["rejection_reason"],
        deadline_at=row["deadline_at"],
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
