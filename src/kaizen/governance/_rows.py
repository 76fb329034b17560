"""Rows and audit events of the approval storage's state changes (no database access)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaizen.governance.audit import make_event
from kaizen.governance.models import ApprovalStatus, AuditEvent, ExternalAgentApprovalRequest

__all__ = ["content", "decision_values", "may_decide", "timeout_event"]


def may_decide(
    row: dict[str, Any] | None,
    from_status: ApprovalStatus,
    actor: str,
    require_approver: bool,
    before_deadline: datetime | None,
) -> bool:
    """Whether the conditional write can match (a shortcut; the WHERE clause decides)."""
    if row is None or row["status"] != from_status.value:
        return False
    if require_approver and actor not in (row["approvers_json"] or []):
        return False
    deadline = row["deadline_at"]
    return before_deadline is None or deadline is None or deadline > before_deadline


def decision_values(
    status: ApprovalStatus, actor: str, reason: str | None, event: AuditEvent
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "status": status.value,
        "approved_at": event.occurred_at,
        "audit_seq": event.seq,
        "audit_head": event.hash,
    }
    if status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        values["approved_by"] = actor
    if reason is not None:
        values["rejection_reason"] = reason
    return values


def timeout_event(row: dict[str, Any], prev: str, token: str, now: datetime) -> AuditEvent:
    details = {"deadline_at": row["deadline_at"].isoformat(), "sweep": token}
    return make_event(row["id"], row["audit_seq"], "timed_out", "system", now, details, prev)


def content(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """What the audit trail records of a request's content (all of it seals the row).

    ``approved_at`` is recorded since the row was sealed: events written before
    lack it, and leave it unsealed until a decision (see ``kaizen.governance._seal``).
    """
    return {
        "external_agent_id": request.external_agent_id,
        "requested_by": request.requested_by,
        "approvers": list(request.approvers),
        "status": request.status.value,
        "approval_reason": request.approval_reason,
        "metadata": request.request_metadata,
        "deadline_at": request.deadline_at.isoformat() if request.deadline_at else None,
        "approved_by": request.approved_by,
        "approved_at": request.approved_at.isoformat() if request.approved_at else None,
        "rejection_reason": request.rejection_reason,
    }
