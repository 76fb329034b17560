"""The filter of the one approval listing query (no database access)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dataflow.errors import ValidationError
from kaizen.governance.models import ApprovalStatus, as_status, check_id

__all__ = ["listing_filter"]


def listing_filter(
    status: ApprovalStatus | None,
    approver: str | Sequence[str] | None,
    agent: str | None,
    requested_by: str | None,
    involving: str | Sequence[str] | None,
    decided_by: str | None = None,
) -> dict[str, Any]:
    """The DataFlow filter selecting requests that match every given criterion.

    Raises:
        ValidationError: A criterion is not a valid id or status.
    """
    filt: dict[str, Any] = {}
    if status is not None:
        filt["status"] = as_status(status).value
    groups: list[dict[str, Any]] = []  # each: one $or that must hold
    if isinstance(approver, str):
        check_id("approver", approver)
        filt["approvers_json"] = {"$contains": approver}
    elif approver is not None:
        approvers = [check_id("approver", a) for a in approver]
        if not approvers:
            raise ValidationError("approver needs at least one user")
        groups.append({"$or": [{"approvers_json": {"$contains": a}} for a in approvers]})
    if agent is not None:
        check_id("external agent id", agent)
        filt["external_agent_id"] = agent
    if requested_by is not None:
        check_id("requested_by", requested_by)
        filt["requested_by"] = requested_by
    if decided_by is not None:
        check_id("decided_by", decided_by)
        filt["approved_by"] = decided_by
    if isinstance(involving, str):
        check_id("user", involving)
        groups.append(
            {"$or": [{"requested_by": involving}, {"approvers_json": {"$contains": involving}}]}
        )
    elif involving is not None:
        users = [check_id("user", u) for u in involving]
        if not users:
            raise ValidationError("involving needs at least one user")
        # The first is the reader: their own requests; the others are whom they stand in for.
        groups.append(
            {
                "$or": [
                    {"requested_by": users[0]},
                    *({"approvers_json": {"$contains": u}} for u in users),
                ]
            }
        )
    if len(groups) == 1:
        filt.update(groups[0])
    elif groups:
        filt["$and"] = groups
    return filt
