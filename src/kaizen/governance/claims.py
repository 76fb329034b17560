"""Claims on approvals: who acts on an approved request, at most once (pure rules).

An approval says an action may happen; a claim says who carries it out. A claim is an
audit event (``claimed``, with the claimant) appended by compare-and-set like every
change, so of any number of workers claiming one approval exactly one holds it, and
the trail says who did and when. ``released`` gives it back (a worker that gave up
before acting). Neither changes a sealed field of the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from dataflow.errors import ValidationError
from kaizen.governance._rows import Change
from kaizen.governance.models import ApprovalStatus, AuditEvent, ExternalAgentApprovalRequest

__all__ = ["CLAIMED", "RELEASED", "claim", "holder", "release"]

#: The audit events of claims.
CLAIMED, RELEASED = "claimed", "released"


def holder(events: Sequence[AuditEvent]) -> str | None:
    """Who holds the claim on a request, by its events (oldest first), or None."""
    held: str | None = None
    for event in events:
        if event.event == CLAIMED:
            held = str(event.details.get("claimant"))
        elif event.event == RELEASED:
            held = None
    return held


def _change(
    request: ExternalAgentApprovalRequest, event: str, claimant: str, now: datetime
) -> Change:
    return Change(
        request.id,
        request.audit_seq,
        request.audit_head,
        event,
        claimant,
        now,
        details={"claimant": claimant},
        announce=False,
    )


def claim(request: ExternalAgentApprovalRequest, claimant: str, now: datetime) -> Change:
    """The change claiming ``request`` for ``claimant`` (nobody holds it).

    Raises:
        ValidationError: The request is not approved: there is nothing to act on.
    """
    if request.status is not ApprovalStatus.APPROVED:
        raise ValidationError(
            f"approval request {request.id!r} is {request.status.value}: only an approved "
            "request can be claimed"
        )
    return _change(request, CLAIMED, claimant, now)


def release(request: ExternalAgentApprovalRequest, claimant: str, now: datetime) -> Change:
    """The change giving ``claimant``'s claim on ``request`` back."""
    return _change(request, RELEASED, claimant, now)
