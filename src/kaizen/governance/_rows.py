"""A request's state change as both stores apply it, and the audit event recording it.

The policy (:mod:`kaizen.governance.policy`) decides a :class:`Change`; a store
applies it only if the request is still at the audit sequence number the change
was computed from, writing the event :func:`change_event` builds in the same
step. The event carries every field the change sets (``details["set"]``) and the
vote it records (``details["vote"]``), so the chain alone says what the row and
its votes must hold (see :mod:`kaizen.governance._seal`).
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from kaizen.governance.audit import make_event
from kaizen.governance.models import AuditEvent, Delegation, ExternalAgentApprovalRequest, Vote

__all__ = ["CHANGEABLE", "Change", "apply_change", "change_event", "content", "vote_json"]

#: Values a request can share with a change (nothing in them can be altered).
_IMMUTABLE = (str, int, float, datetime, enum.Enum, type(None))
#: Request fields a change may set.
CHANGEABLE = frozenset(
    {
        "status",
        "approved_at",
        "approved_by",
        "rejection_reason",
        "approvers",
        "deadline_at",
        "escalations",
        "approved_metadata",
    }
)


@dataclass(frozen=True)
class Change:
    """One state change of a request, to apply only if it is still at ``seq``.

    Attributes:
        request_id: The request.
        seq: The audit seq the change was computed from (compare-and-set).
        head: The hash of that event (the new event's ``prev_hash``).
        event: The audit event's name (``voted``, ``approved``, ``escalated``...).
        actor: Who caused it.
        at: When (the event's time; a decision's ``approved_at``).
        fields: Request field -> its new value (names in :data:`CHANGEABLE`).
        details: What else the event records (a diff, the quorum progress...).
        vote: The vote the change records, if any.
        delegation: The delegation a delegate's vote relies on: the store applies
            the change only if it still holds (a revoke serialises against it).
        announce: Whether waiters are woken (a status change, an escalation; a
            vote that decides nothing is not announced).
    """

    request_id: str
    seq: int
    head: str
    event: str
    actor: str
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    vote: Vote | None = None
    delegation: Delegation | None = None
    announce: bool = True

    @cached_property
    def recorded(self) -> AuditEvent:
        """The audit event recording the change (hashed once: the store writes it, the
        manager chains the request onto it)."""
        return _event_of(self)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def vote_json(vote: Vote) -> dict[str, Any]:
    """A vote as the audit trail records it (its time is the event's)."""
    return {
        "approver_id": vote.approver_id,
        "decision": vote.decision,
        "comment": vote.comment,
        "on_behalf_of": vote.on_behalf_of,
        "metadata": vote.metadata,
    }


def change_event(change: Change) -> AuditEvent:
    """The audit event recording ``change`` (seq ``change.seq + 1``)."""
    return change.recorded


def _event_of(change: Change) -> AuditEvent:
    details = dict(change.details)
    details["set"] = {name: _json_value(value) for name, value in change.fields.items()}
    if change.vote is not None:
        details["vote"] = vote_json(change.vote)
    return make_event(
        change.request_id,
        change.seq + 1,
        change.event,
        change.actor,
        change.at,
        details,
        change.head,
    )


def apply_change(
    request: ExternalAgentApprovalRequest, change: Change, event: AuditEvent
) -> ExternalAgentApprovalRequest:
    """``request`` with ``change`` (recorded by ``event``) applied, in place."""
    for name, value in change.fields.items():
        setattr(request, name, value if isinstance(value, _IMMUTABLE) else copy.deepcopy(value))
    if change.vote is not None:
        request.votes = [*request.votes, change.vote]
    request.audit_seq, request.audit_head = event.seq, event.hash
    return request


def content(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """What the audit trail records of a request's content (all of it seals the row).

    ``approved_at`` is recorded since the row was sealed, the frozen policy since
    quorums: events written before lack them, and leave them unsealed until a
    change sets them (see ``kaizen.governance._seal``).
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
        "quorum": request.quorum,
        "escalate_to": list(request.escalate_to),
        "escalations": request.escalations,
        "timeout_seconds": request.timeout_seconds,
        "excluded_approvers": list(request.excluded_approvers),
        "approved_metadata": request.approved_metadata,
    }
