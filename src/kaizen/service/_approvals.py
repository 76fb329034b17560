"""Approval requests as plain data: list, create, read, vote, audit, sweep."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from dataflow.errors import ValidationError
from kaizen.access import Viewer, involving, may_see_request, may_see_trail
from kaizen.governance import (
    ApprovalConfigurationError,
    ApprovalLevel,
    ApprovalNotFoundError,
    ApprovalRequirement,
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    NotAuthorizedError,
)
from kaizen.governance.policy import eligible, progress

if TYPE_CHECKING:
    from kaizen.service import Kaizen

__all__ = [
    "STATUSES",
    "page_bounds",
    "approval_audit",
    "approval_dict",
    "approve",
    "get_approval",
    "list_approvals",
    "reject",
    "request_approval",
    "sweep_approvals",
    "verify_audit",
]


STATUSES = ("pending", "approved", "rejected", "timeout", "all")


def approval_dict(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """A request as a plain dict (the status as its string value), with its votes,
    ``progress`` toward the quorum (``{"approvals", "quorum", "text": "1 of 2",
    "metadata"}``: ``metadata`` is the version with the most approvals, None for the
    request's own) and ``eligible`` (who may still vote in person)."""
    data = dataclasses.asdict(request)
    del data["audit_seq"], data["audit_head"]
    data["status"] = request.status.value
    done = progress(request)
    data["progress"] = {
        "approvals": done.approvals,
        "quorum": done.quorum,
        "text": str(done),
        "metadata": done.metadata,
    }
    voted = {v.counts_for for v in request.votes}
    data["eligible"] = [a for a in eligible(request) if a not in voted]
    return data


def page_bounds(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValidationError("limit and offset must not be negative")


def _status(value: str | None) -> ApprovalStatus | None:
    if value is None or value == "all":
        return None
    try:
        return ApprovalStatus(value)
    except ValueError:
        raise ValidationError(
            f"unknown status {value!r}; use one of {', '.join(STATUSES)}"
        ) from None


async def list_approvals(
    k: Kaizen,
    *,
    viewer: Viewer | None = None,
    status: str | None = None,
    approver: str | None = None,
    agent: str | None = None,
    requested_by: str | None = None,
    decided_by: str | None = None,
    voter: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of approval requests, newest first, in one query.

    Args:
        k: The services.
        viewer: Who reads (None: the operator, who sees everything); a
            non-admin sees only requests they made or are an approver of, or
            that are routed to someone they stand in for as a delegate.
        status: ``pending``, ``approved``, ``rejected``, ``timeout`` or ``all``
            (None: all).
        approver: Only requests this user may decide.
        agent: Only requests for this external agent.
        requested_by: Only requests this user made.
        decided_by: Only requests this user approved or rejected.
        voter: Only requests this user may vote on: routed to them, or to someone
            they stand in for as a delegate (the inbox's list).
        limit: At most this many.
        offset: Skip this many first.

    Returns:
        ``{"items": [...], "next_offset": int | None}``; ``next_offset`` is
        where the next page starts, None on the last page.
    """
    page_bounds(limit, offset)
    user = involving(viewer)
    stand_in = await _delegators(k, viewer) if user is not None else []
    routed: str | list[str] | None = approver
    if voter is not None:
        if approver is not None:
            raise ValidationError("give approver or voter, not both")
        delegators = await k.approvals.delegations(delegate=voter)
        routed = [voter, *(d.approver_id for d in delegators)]
    found = await k.approvals.list_requests(
        status=_status(status),
        approver=routed,
        agent=agent,
        requested_by=requested_by,
        involving=[user, *stand_in] if stand_in and user is not None else user,
        decided_by=decided_by,
        limit=limit + 1,
        offset=offset,
    )
    more = len(found) > limit
    return {
        "items": [approval_dict(r) for r in found[:limit]],
        "next_offset": offset + limit if more else None,
    }


async def request_approval(
    k: Kaizen,
    agent: str,
    requested_by: str,
    *,
    approvers: list[str] | None = None,
    quorum: int | None = None,
    metadata: dict[str, Any] | None = None,
    timeout_seconds: float | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Create a pending request for ``agent`` by ``requested_by``; return it as stored.

    Args:
        k: The services.
        agent: The external agent whose invocation needs approval.
        requested_by: Who asks.
        approvers: Who may vote on this request only (a CUSTOM requirement, not
            stored for later requests); None routes by the agent's stored policy.
        quorum: Approvals needed (with ``approvers``; default 1).
        metadata: What the approvers see (a JSON object).
        timeout_seconds: How long the request stays decidable (with
            ``approvers``; default 3600).
        reason: Why the requester asks, shown to the approvers (default: the
            policy's reason).
        request_id: The id to store it under (default: a new one); asking again
            with the same id and content returns the stored request, so a call
            whose answer was lost can be repeated.

    Raises:
        ValidationError: Bad ids, metadata, quorum or timeout, ``quorum`` or
            ``timeout_seconds`` without ``approvers``, or an agent with no stored
            policy and no ``approvers``; nothing is written.
    """
    manager = k.approvals
    if approvers is not None:
        manager = _one_request_manager(k, agent, approvers, quorum, timeout_seconds)
    elif quorum is not None or timeout_seconds is not None:
        raise ValidationError(
            "a quorum or timeout goes with approvers: without them the agent's stored "
            "policy sets both"
        )
    elif await manager.requirement_for(agent) is None:
        raise ValidationError(
            f"agent {agent!r} has no stored policy: give the approvers of this request, "
            f"or store one (kaizen policies set {agent} --approvers USER)"
        )
    try:
        request_id = await manager.request_approval(
            agent, requested_by, metadata, request_id=request_id, reason=reason
        )
    except ApprovalConfigurationError as exc:  # input that routes to nobody who could vote
        raise ValidationError(str(exc)) from exc
    return await get_approval(k, request_id)


def _one_request_manager(
    k: Kaizen,
    agent: str,
    approvers: list[str],
    quorum: int | None,
    timeout_seconds: float | None,
) -> ExternalAgentApprovalManager:
    """A manager on the same store routing ``agent`` to ``approvers``: the requirement
    stays out of ``k``'s manager, so no later request is routed by it."""
    if not isinstance(approvers, list) or not approvers:
        raise ValidationError("approvers must be a non-empty list of approver ids")
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM,
        custom_approvers=list(dict.fromkeys(approvers)),
        approval_timeout_seconds=3600 if timeout_seconds is None else timeout_seconds,
        quorum=1 if quorum is None else quorum,
    )
    shared = k.approvals
    manager = ExternalAgentApprovalManager(
        shared.protocol,
        k.approval_storage,
        approvers=shared.approvers,
        base_url=shared.base_url,
        retry_policy=shared.retry_policy,
    )
    manager.add_requirement(agent, requirement)
    return manager


async def _visible(
    k: Kaizen, request_id: str, viewer: Viewer | None
) -> ExternalAgentApprovalRequest:
    request = await k.approvals.get_request(request_id)
    if request is None:
        raise ApprovalNotFoundError(request_id)
    if not may_see_request(viewer, request) and not may_see_request(
        viewer, request, await _delegators(k, viewer)
    ):
        raise ApprovalNotFoundError(request_id)
    return request


async def _delegators(k: Kaizen, viewer: Viewer | None) -> list[str]:
    """Whom ``viewer`` stands in for (active delegations to them)."""
    if viewer is None or viewer.admin:
        return []
    return [d.approver_id for d in await k.approvals.delegations(delegate=viewer.user)]


async def get_approval(k: Kaizen, request_id: str, viewer: Viewer | None = None) -> dict[str, Any]:
    """One request.

    Raises:
        ApprovalNotFoundError: No request has this id, or ``viewer`` may not see it.
    """
    return approval_dict(await _visible(k, request_id, viewer))


async def _decided(
    k: Kaizen, decision: Awaitable[object], request_id: str, viewer: Viewer | None
) -> dict[str, Any]:
    try:
        await decision
    except NotAuthorizedError:
        if viewer is not None:  # a user who may not even see the request learns nothing
            await _visible(k, request_id, viewer)
        raise
    return await get_approval(k, request_id)


async def approve(
    k: Kaizen,
    request_id: str,
    approver_id: str,
    *,
    comment: str | None = None,
    metadata: dict[str, Any] | None = None,
    on_behalf_of: str | None = None,
    viewer: Viewer | None = None,
) -> dict[str, Any]:
    """Vote to approve a request as ``approver_id``; return it as stored.

    Args:
        k: The services.
        request_id: The request.
        approver_id: Who approves (an approver or a delegate of one).
        comment: Shown with the vote.
        metadata: The edited metadata approved (edit-and-approve).
        on_behalf_of: The approver a delegate votes for.
        viewer: The approver as a reader (the HTTP API): a request they may
            not see is reported as not found rather than as not theirs to decide.

    Raises:
        ApprovalNotFoundError: Unknown id (or one ``viewer`` may not see).
        NotAuthorizedError, SelfDecisionError, AlreadyVotedError, AlreadyDecidedError:
            As the manager does.
    """
    decision = k.approvals.approve_request(
        request_id, approver_id, comment=comment, metadata=metadata, on_behalf_of=on_behalf_of
    )
    return await _decided(k, decision, request_id, viewer)


async def reject(
    k: Kaizen,
    request_id: str,
    approver_id: str,
    reason: str,
    *,
    on_behalf_of: str | None = None,
    viewer: Viewer | None = None,
) -> dict[str, Any]:
    """Reject a request as ``approver_id`` with ``reason`` (a veto); return it as
    stored (see :func:`approve`)."""
    decision = k.approvals.reject_request(
        request_id, approver_id, reason, on_behalf_of=on_behalf_of
    )
    return await _decided(k, decision, request_id, viewer)


async def approval_audit(
    k: Kaizen, request_id: str, viewer: Viewer | None = None
) -> list[dict[str, Any]]:
    """The audit events of one request, oldest first (also after the request was deleted).

    Raises:
        ApprovalNotFoundError: Neither the request nor any event of it exists,
            or ``viewer`` may not see them.
    """
    events = await k.approvals.get_audit_trail(request_id)
    request = await k.approvals.get_request(request_id)
    if request is not None:  # who may read it now, not who could when it was made
        visible = may_see_request(viewer, request)
    else:
        visible = bool(events) and may_see_trail(viewer, events)
    if not visible:
        raise ApprovalNotFoundError(request_id)
    return [dataclasses.asdict(e) for e in events]


async def sweep_approvals(k: Kaizen) -> dict[str, int]:
    """Escalate or time out every overdue pending request.

    Returns:
        ``{"timed_out": n, "escalated": m}``: what this call did.
    """
    done = await k.approvals.sweep_overdue()
    return {"timed_out": len(done.timed_out), "escalated": len(done.escalated)}


async def verify_audit(k: Kaizen) -> dict[str, Any]:
    """Verify every audit chain; return ``{"ok", "requests", "events", "problems"}``."""
    report = await k.approvals.verify_audit()
    return {
        "ok": report.ok,
        "requests": report.requests,
        "events": report.events,
        "problems": [dataclasses.asdict(p) for p in report.problems],
    }
