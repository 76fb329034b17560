"""Application services: plain async functions over one database, returning data.

The ``kaizen`` CLI and the HTTP API are thin layers over these functions, so
both behave the same. Results are plain dicts and lists (datetimes stay
``datetime``; renderers convert them).

Example:
    >>> async with Kaizen.open("sqlite:///kaizen.db") as k:  # doctest: +SKIP
    ...     pending = await list_approvals(k, status="pending")
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

from dataflow import DataFlow
from dataflow.errors import DatabaseRefusedError, NotFoundError, ValidationError
from dataflow.urls import parse_url
from kaizen.access import Viewer, involving, may_see_request, may_see_session, may_see_trail
from kaizen.governance import (
    ApprovalConfigurationError,
    ApprovalLevel,
    ApprovalNotFoundError,
    ApprovalRequirement,
    ApprovalStatus,
    Delegation,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    NotAuthorizedError,
)
from kaizen.governance.policies import requirement_to_json
from kaizen.governance.policy import eligible, progress
from kaizen.integrations.nexus import CrossChannelSession, NexusSessionManager, SessionStorage
from kaizen.integrations.nexus.errors import SessionNotFoundError

__all__ = [
    "STATUSES",
    "Kaizen",
    "Viewer",
    "approval_audit",
    "approval_dict",
    "approve",
    "cleanup_sessions",
    "delegate",
    "delegation_dict",
    "delete_policy",
    "get_policy",
    "list_delegations",
    "list_policies",
    "policy_dict",
    "revoke_delegation",
    "set_policy",
    "get_approval",
    "get_session",
    "health",
    "list_approvals",
    "list_sessions",
    "maintain_once",
    "reject",
    "request_approval",
    "session_dict",
    "sweep_approvals",
    "verify_audit",
]

STATUSES = ("pending", "approved", "rejected", "timeout", "all")


@dataclasses.dataclass
class Kaizen:
    """One database with the approval and session storages and managers on it."""

    db: DataFlow
    approval_storage: ExternalAgentApprovalStorage
    approvals: ExternalAgentApprovalManager
    session_storage: SessionStorage
    sessions: NexusSessionManager

    @classmethod
    def connect(cls, url: str, *, base_url: str | None = None) -> Kaizen:
        """Build the services on ``url`` (connecting lazily)."""
        db = DataFlow(url)
        approval_storage = ExternalAgentApprovalStorage(db)
        session_storage = SessionStorage(db)
        return cls(
            db=db,
            approval_storage=approval_storage,
            approvals=ExternalAgentApprovalManager(
                storage_backend=approval_storage, base_url=base_url or ""
            ),
            session_storage=session_storage,
            sessions=NexusSessionManager(storage_backend=session_storage),
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, url: str, *, base_url: str | None = None, create: bool = True
    ) -> AsyncIterator[Kaizen]:
        """Open the services on ``url`` for the duration of a block.

        Args:
            url: The database URL.
            base_url: Public URL of the API, for the links sent to approvers.
            create: False for commands that only read or change what exists: a
                SQLite file that is not there is then an error, not a new database.

        Raises:
            DatabaseRefusedError: ``create`` is False and the SQLite file does not exist.
        """
        if not create:
            _must_exist(url)
        kaizen = cls.connect(url, base_url=base_url)
        try:
            yield kaizen
        finally:
            await kaizen.db.close()


def _must_exist(url: str) -> None:
    parsed = parse_url(url)
    path = parsed.database
    if parsed.family == "sqlite" and path not in (None, ":memory:") and not Path(path).exists():
        raise DatabaseRefusedError(
            f"no database at {path}: nothing to read there "
            "(check --db, $KAIZEN_DATABASE_URL or $DATABASE_URL)"
        )


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


def session_dict(session: CrossChannelSession, now: datetime | None = None) -> dict[str, Any]:
    """A session as a plain dict, with ``ttl_seconds`` and ``expired``."""
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "last_accessed": session.last_accessed,
        "expires_at": session.expires_at,
        "ttl_seconds": int(session.ttl.total_seconds()),
        "expired": session.is_expired(now),
        "memory_pool_id": session.memory_pool_id,
        "state": dict(session.state),
        "channel_activity": dict(session.channel_activity),
    }


def _page_bounds(limit: int, offset: int) -> None:
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


async def health(k: Kaizen) -> dict[str, str]:
    """``{"status": "ok", "database": <dialect>}`` when the database answers.

    Raises:
        ConnectionLostError: It does not.
    """
    await k.db.ping()
    return {"status": "ok", "database": k.db.dialect_name}


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
    _page_bounds(limit, offset)
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
        request_id = await manager.request_approval(agent, requested_by, metadata)
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


def policy_dict(agent: str, requirement: ApprovalRequirement) -> dict[str, Any]:
    """A stored policy as a plain dict: ``agent`` and the requirement's JSON form."""
    return {"agent": agent, **requirement_to_json(requirement)}


async def set_policy(
    k: Kaizen,
    agent: str,
    *,
    approvers: list[str],
    quorum: int = 1,
    timeout_seconds: float = 3600,
    escalate_to: list[str] | None = None,
    reason: str | None = None,
    actor: str = "operator",
) -> dict[str, Any]:
    """Store a CUSTOM policy for ``agent`` (every instance routes by it); return it.

    What this cannot express is kept from the agent's stored policy: its triggers
    (``require_for_*``) and ``excluded_approvers`` (separation of duties is never
    loosened by a command that does not mention it).

    Raises:
        ValidationError: Bad ids, quorum or timeout (nothing is stored).
    """
    before = await k.approvals.stored_policy(agent)
    kept: dict[str, Any] = {}
    if before is not None:
        kept = {
            "require_for_environments": before.require_for_environments,
            "require_for_cost_above": before.require_for_cost_above,
            "require_for_data_classifications": before.require_for_data_classifications,
            "require_for_operations": before.require_for_operations,
            "excluded_approvers": before.excluded_approvers,
        }
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM,
        custom_approvers=list(approvers),
        approval_timeout_seconds=timeout_seconds,
        approval_reason=reason,
        quorum=quorum,
        escalate_to=escalate_to or None,
        **kept,
    )
    if not approvers:
        raise ValidationError("a policy needs at least one approver")
    if quorum > len(set(approvers)):
        raise ValidationError(f"quorum {quorum} is more than the {len(set(approvers))} approvers")
    await k.approvals.save_policy(agent, requirement, actor=actor)
    return policy_dict(agent, requirement)


async def list_policies(k: Kaizen) -> list[dict[str, Any]]:
    """Every stored policy, by agent id."""
    return [policy_dict(a, r) for a, r in (await k.approvals.load_policies()).items()]


async def get_policy(k: Kaizen, agent: str) -> dict[str, Any]:
    """One stored policy, with its audit ``history`` (who, when, before/after).

    Raises:
        NotFoundError: The agent has no stored policy.
    """
    requirement = await k.approvals.stored_policy(agent)
    if requirement is None:
        raise NotFoundError(f"no stored policy for agent {agent!r}")
    history = [dataclasses.asdict(e) for e in await k.approvals.policy_history(agent)]
    return {**policy_dict(agent, requirement), "history": history}


async def delete_policy(k: Kaizen, agent: str, *, actor: str = "operator") -> None:
    """Delete ``agent``'s stored policy.

    Raises:
        NotFoundError: It has none.
    """
    if not await k.approvals.delete_policy(agent, actor=actor):
        raise NotFoundError(f"no stored policy for agent {agent!r}")


def delegation_dict(delegation: Delegation) -> dict[str, Any]:
    """A delegation as a plain dict."""
    return dataclasses.asdict(delegation)


async def delegate(
    k: Kaizen,
    approver: str,
    to: str,
    *,
    until: datetime | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Let ``to`` vote for ``approver`` (until ``until``); return the delegation."""
    return delegation_dict(await k.approvals.delegate(approver, to=to, until=until, actor=actor))


async def revoke_delegation(k: Kaizen, approver: str, to: str, *, actor: str | None = None) -> None:
    """End ``to``'s delegation from ``approver``.

    Raises:
        NotFoundError: There is none.
    """
    if not await k.approvals.revoke_delegation(approver, to=to, actor=actor):
        raise NotFoundError(f"{to!r} holds no delegation from {approver!r}")


async def list_delegations(
    k: Kaizen, *, approver: str | None = None, delegate: str | None = None
) -> list[dict[str, Any]]:
    """Active delegations, from ``approver`` and/or to ``delegate``."""
    found = await k.approvals.delegations(approver, delegate=delegate)
    return [delegation_dict(d) for d in found]


async def verify_audit(k: Kaizen) -> dict[str, Any]:
    """Verify every audit chain; return ``{"ok", "requests", "events", "problems"}``."""
    report = await k.approvals.verify_audit()
    return {
        "ok": report.ok,
        "requests": report.requests,
        "events": report.events,
        "problems": [dataclasses.asdict(p) for p in report.problems],
    }


async def list_sessions(
    k: Kaizen,
    *,
    viewer: Viewer | None = None,
    user: str | None = None,
    include_expired: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Sessions, most recently accessed first (expired ones too with ``include_expired``).

    A non-admin ``viewer`` sees only their own sessions (another ``user``: none).
    """
    _page_bounds(limit, offset)
    own = involving(viewer)
    if own is not None:
        if user not in (None, own):
            return []
        user = own
    store = k.session_storage
    if user is not None:
        found = await store.list_by_user(user, include_expired, limit, offset=offset)
    else:
        found = await store.list_active(limit, offset, include_expired=include_expired)
    return [session_dict(s) for s in found]


async def get_session(k: Kaizen, session_id: str, viewer: Viewer | None = None) -> dict[str, Any]:
    """One session, expired or not (until cleanup deletes it).

    Raises:
        SessionNotFoundError: No session has this id, or ``viewer`` may not see it.
    """
    session = await k.session_storage.load(session_id, include_expired=True)
    if session is None or not may_see_session(viewer, session):
        raise SessionNotFoundError(f"no session {session_id!r}")
    return session_dict(session)


async def cleanup_sessions(k: Kaizen) -> int:
    """Delete every expired session; return the true number deleted."""
    return await k.sessions.cleanup_expired_sessions_async()


async def maintain_once(k: Kaizen) -> dict[str, int]:
    """One maintenance pass: escalate or time out overdue approvals, delete expired
    sessions.

    Safe to run from several instances at once: each row changes once.
    """
    swept = await sweep_approvals(k)
    return {
        "approvals_timed_out": swept["timed_out"],
        "approvals_escalated": swept["escalated"],
        "sessions_deleted": await cleanup_sessions(k),
    }
