"""Routing a new request: the requirement of its agent, its approvers, its deadline."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from dataflow.values import utcnow
from kaizen.governance.approvers import ApproverDirectory
from kaizen.governance.errors import ApprovalConfigurationError
from kaizen.governance.models import (
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStatus,
    ExternalAgentApprovalRequest,
)

__all__ = ["new_request", "requirement_for", "same_request"]

logger = logging.getLogger("kaizen.governance")


def requirement_for(
    requirement: ApprovalRequirement | None, external_agent_id: str
) -> ApprovalRequirement:
    """The requirement found for the agent (in process, else stored).

    Raises:
        ApprovalConfigurationError: None is; the message says how to add one.
    """
    if requirement is None:
        raise ApprovalConfigurationError(
            f"no approval requirement is configured for external agent {external_agent_id!r}; "
            f"add one first: manager.set_approvers({external_agent_id!r}, ['lead-456']), "
            f"manager.add_requirement({external_agent_id!r}, ApprovalRequirement(...)) "
            f"or, shared by every instance, kaizen policies set {external_agent_id} "
            "--approvers lead-456"
        )
    return requirement


def new_request(
    directory: ApproverDirectory,
    agent: str,
    requested_by: str,
    metadata: dict[str, Any],
    requirement: ApprovalRequirement,
    request_id: str | None = None,
    reason: str | None = None,
) -> ExternalAgentApprovalRequest:
    """A pending request routed as ``requirement`` says, due in its timeout from now.

    ``reason`` (the requester's own words) is shown to the approvers instead of the
    requirement's ``approval_reason``.

    Raises:
        ApprovalConfigurationError: The requirement's level resolves to no approvers.
    """
    level = requirement.approval_level
    routed = directory.approvers_for(level, requested_by, requirement.custom_approvers)
    excluded = set(requirement.excluded_approvers)
    approvers = [a for a in routed if a not in excluded]
    if routed and not approvers:
        raise ApprovalConfigurationError(
            f"every approver for level {level.value!r} (request by {requested_by!r}) is in "
            "the requirement's excluded_approvers: nobody could decide it"
        )
    if approvers and all(a == requested_by for a in approvers):
        raise ApprovalConfigurationError(
            f"the only approver for level {level.value!r} is the requester {requested_by!r}, "
            "who may not decide their own request: add another approver"
        )
    if not approvers:
        raise ApprovalConfigurationError(
            f"no approvers for level {level.value!r} (request by {requested_by!r}): "
            "configure them with manager.set_team() and manager.add_team_lead(), "
            "manager.add_org_admin(), manager.set_owner(), or custom_approvers"
        )
    escalate_to = _escalation(directory, requirement, requested_by, excluded)
    voters = [a for a in approvers if a != requested_by]
    if requirement.quorum > len(voters):
        raise ApprovalConfigurationError(
            f"the requirement needs {requirement.quorum} approvals but only {len(voters)} "
            f"approver(s) could vote on a request by {requested_by!r}: add approvers or "
            "lower the quorum"
        )
    now = utcnow()
    return ExternalAgentApprovalRequest(
        id=request_id or str(uuid.uuid4()),
        external_agent_id=agent,
        requested_by=requested_by,
        approvers=approvers,
        status=ApprovalStatus.PENDING,
        approval_reason=reason
        or requirement.approval_reason
        or "External agent invocation requires approval",
        request_metadata=dict(metadata),
        created_at=now,
        deadline_at=now + timedelta(seconds=requirement.approval_timeout_seconds),
        quorum=requirement.quorum,
        escalate_to=escalate_to,
        timeout_seconds=float(requirement.approval_timeout_seconds),
        excluded_approvers=list(requirement.excluded_approvers),
    )


def _escalation(
    directory: ApproverDirectory,
    requirement: ApprovalRequirement,
    requested_by: str,
    excluded: set[str],
) -> list[str]:
    """The approvers a request escalates to, resolved now (frozen into the request).

    Raises:
        ApprovalConfigurationError: An ``escalate_to`` list names nobody who could
            vote (a level that resolves to nobody escalates nowhere: logged).
    """
    target = requirement.escalate_to
    if target is None:
        return []
    if isinstance(target, ApprovalLevel):
        found = directory.approvers_for(target, requested_by)
        what = f"level {target.value!r}"
    else:
        found = list(dict.fromkeys(target))
        what = "escalate_to"
    usable = [a for a in found if a not in excluded and a != requested_by]
    if not usable and isinstance(target, ApprovalLevel):
        # A level is the org chart's answer for this requester (no owner yet, no
        # team): the request is still decidable by its approvers, it times out instead.
        logger.warning(
            "escalation level %r gives nobody for a request by %r: it will time out instead",
            target.value,
            requested_by,
        )
        return []
    if not usable:
        raise ApprovalConfigurationError(
            f"{what} gives nobody to escalate a request by {requested_by!r} to "
            "(after excluded approvers and the requester): configure its approvers"
        )
    return usable


def same_request(
    stored: ExternalAgentApprovalRequest | None, asked: ExternalAgentApprovalRequest
) -> bool:
    """Whether ``stored`` is the request ``asked`` again (a repeated call)."""
    return stored is not None and (
        stored.external_agent_id,
        stored.requested_by,
        stored.approvers,
        stored.request_metadata,
    ) == (asked.external_agent_id, asked.requested_by, asked.approvers, asked.request_metadata)
