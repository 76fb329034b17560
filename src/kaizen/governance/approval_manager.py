"""The approval workflow: who must approve what, and exactly-once decisions.

The manager decides; the store persists. With a storage backend every read on
a decision path goes to the database, so any instance (process) can approve,
reject, time out or wait on a request another instance created.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dataflow.errors import ConcurrencyError, DuplicateKeyError, ValidationError
from dataflow.jsonvalues import check_json
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance._store import ApprovalStore
from kaizen.governance.approvers import ApproverDirectory
from kaizen.governance.errors import (
    AlreadyDecidedError,
    ApprovalNotFoundError,
    NotAuthorizedError,
    SelfDecisionError,
)
from kaizen.governance.memory import InMemoryApprovalStore
from kaizen.governance.models import (
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    ExternalAgentApprovalRequest,
    check_id,
    check_rejection_reason,
)
from kaizen.governance.notify import ControlProtocol, notify_approvers
from kaizen.governance.routing import new_request, requirement_for, same_request

__all__ = ["ExternalAgentApprovalManager"]

logger = logging.getLogger("kaizen.governance")
_PENDING = ApprovalStatus.PENDING
#: Decisions re-read and tried again when the request changed under them (not a race lost).
_ATTEMPTS = 3
#: Longest single sleep of ``wait_for_approval`` before it re-reads the request.
_RECHECK_SECONDS = 5.0


class ExternalAgentApprovalManager:
    """Human-in-the-loop approval of external agent invocations.

    Args:
        control_protocol: Notifies approvers of new requests (optional; see
            :class:`~kaizen.governance.notify.ControlProtocol`).
        storage_backend: Persists requests and the audit trail: the database
            storage, or any :class:`~kaizen.governance.ApprovalStore` (the
            in-memory store, a store of your own); without it everything lives
            in this process's memory.
        approvers: The organisation chart requests are routed by (also
            configurable with :meth:`set_team`, :meth:`add_team_lead`,
            :meth:`add_org_admin`, :meth:`set_owner`).
        base_url: Prefix of the approve/reject URLs sent to approvers.
        retry_policy: How storage writes that lost a race (a deadlock, a
            serialization failure) are tried again.

    Example:
        >>> manager = ExternalAgentApprovalManager(storage_backend=storage)
        >>> manager.set_approvers("copilot-001", ["lead-456"])
        >>> request_id = await manager.request_approval("copilot-001", "user-123", {"cost": 15.0})
        >>> await manager.approve_request(request_id, "lead-456")
    """

    def __init__(
        self,
        control_protocol: ControlProtocol | None = None,
        storage_backend: ApprovalStore | None = None,
        *,
        approvers: ApproverDirectory | None = None,
        base_url: str = "",
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.protocol = control_protocol
        self.storage = storage_backend
        self.approvers = approvers if approvers is not None else ApproverDirectory()
        self.base_url = base_url
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self._store: ApprovalStore = (
            storage_backend if storage_backend is not None else InMemoryApprovalStore()
        )
        self._requirements: dict[str, ApprovalRequirement] = {}

    # -- configuration -----------------------------------------------------

    def add_requirement(self, external_agent_id: str, requirement: ApprovalRequirement) -> None:
        """Require approval for ``external_agent_id`` as ``requirement`` says (replacing any)."""
        check_id("external_agent_id", external_agent_id)
        if not isinstance(requirement, ApprovalRequirement):
            raise ValidationError("requirement must be an ApprovalRequirement")
        self._requirements[external_agent_id] = requirement

    def set_approvers(
        self,
        external_agent_id: str,
        approvers: list[str],
        *,
        timeout_seconds: float = 3600,
        reason: str | None = None,
    ) -> ApprovalRequirement:
        """Shortcut: requests for ``external_agent_id`` go to ``approvers`` (a CUSTOM requirement).

        Returns:
            The requirement added (replacing any previous one for the agent).
        """
        requirement = ApprovalRequirement(
            ApprovalLevel.CUSTOM,
            custom_approvers=list(approvers),
            approval_timeout_seconds=timeout_seconds,
            approval_reason=reason,
        )
        self.add_requirement(external_agent_id, requirement)
        return requirement

    @property
    def requirements(self) -> Mapping[str, ApprovalRequirement]:
        """The configured requirements by external agent id (a copy)."""
        return dict(self._requirements)

    def set_team(self, user_id: str, team_id: str) -> None:
        """Put ``user_id`` in ``team_id`` (TEAM_LEAD requests go to that team's leads)."""
        self.approvers.set_team(user_id, team_id)

    def add_team_lead(self, team_id: str, lead_id: str) -> None:
        """Make ``lead_id`` a lead (approver) of ``team_id``."""
        self.approvers.add_team_lead(team_id, lead_id)

    def add_org_admin(self, user_id: str) -> None:
        """Make ``user_id`` an organisation admin (approver at ADMIN level)."""
        self.approvers.add_org_admin(user_id)

    def set_owner(self, user_id: str) -> None:
        """Make ``user_id`` the organisation owner (approver at OWNER level)."""
        self.approvers.set_owner(user_id)

    def determine_if_approval_required(
        self, external_agent_id: str, metadata: dict[str, Any]
    ) -> tuple[bool, ApprovalRequirement | None]:
        """Whether an invocation with ``metadata`` needs approval.

        Any trigger of the agent's requirement matching is enough: ``cost`` above
        the threshold, ``environment``, ``operation``, or an overlap of
        ``data_classifications``.

        Returns:
            ``(True, requirement)`` or ``(False, None)`` (also when the agent has no requirement).
        """
        check_id("external_agent_id", external_agent_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a dict")
        requirement = self._requirements.get(external_agent_id)
        if requirement is not None and requirement.triggered_by(metadata or {}):
            return True, requirement
        return False, None

    # -- requests ----------------------------------------------------------

    async def request_approval(
        self,
        external_agent_id: str,
        requested_by: str,
        metadata: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
    ) -> str:
        """Create a request routed to the agent's approvers, persist it, notify them.

        The deadline is ``approval_timeout_seconds`` of the agent's requirement from now.
        A failing notifier is logged; the request is stored regardless.

        Args:
            external_agent_id: The agent whose invocation needs approval.
            requested_by: Who asks.
            metadata: What the approvers see (a JSON object).
            request_id: The id to store it under (default: a new UUID). Calling
                again with the same id and the same content returns the id and
                stores nothing more: a call that failed with
                :class:`~dataflow.errors.ConnectionLostError` (it may or may not
                have committed) can be repeated safely.

        Returns:
            The request's id.

        Raises:
            ValidationError: Empty ids, or metadata that is not a JSON object
                (NaN included); nothing is written.
            ApprovalConfigurationError: The agent has no requirement, or its
                level resolves to no approvers; the message says what to configure.
            DuplicateKeyError: ``request_id`` names a different request.
        """
        check_id("external_agent_id", external_agent_id)
        check_id("requested_by", requested_by)
        if request_id is not None:
            check_id("request_id", request_id)
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict):
            raise ValidationError("metadata must be a dict")
        check_json(metadata, "metadata")  # before any work: the rules of every database
        requirement = requirement_for(self._requirements, external_agent_id)
        request = new_request(
            self.approvers, external_agent_id, requested_by, metadata, requirement, request_id
        )
        store = self._store
        try:
            await self.retry_policy.run(lambda: store.save(request))
        except DuplicateKeyError:
            if not same_request(await store.load(request.id), request):
                raise
            return request.id  # stored by an earlier call that did not hear back
        logger.info(
            "approval request %s for %r created, approvers %s",
            request.id,
            external_agent_id,
            request.approvers,
        )
        if self.protocol is not None:
            await notify_approvers(self.protocol, request, self.base_url)
        return request.id

    # -- decisions ---------------------------------------------------------

    async def approve_request(self, approval_request_id: str, approver_id: str) -> None:
        """Approve a pending request, exactly once across all instances.

        Raises:
            ApprovalNotFoundError: Unknown id.
            NotAuthorizedError: ``approver_id`` is not one of its approvers.
            SelfDecisionError: ``approver_id`` made the request (separation of
                duties: nobody decides their own request, whatever the routing).
            AlreadyDecidedError: It was already approved, rejected or timed out
                (also when its deadline has passed: it is timed out now).
        """
        await self._decide(approval_request_id, approver_id, ApprovalStatus.APPROVED, None)

    async def reject_request(self, approval_request_id: str, approver_id: str, reason: str) -> None:
        """Reject a pending request with ``reason``, exactly once across all instances.

        Raises:
            ApprovalNotFoundError: Unknown id.
            NotAuthorizedError: ``approver_id`` is not one of its approvers.
            SelfDecisionError: ``approver_id`` made the request.
            AlreadyDecidedError: It was already decided (or is past its deadline).
            ValidationError: ``reason`` is blank or longer than ``MAX_REASON`` characters.
        """
        check_rejection_reason(reason)
        await self._decide(approval_request_id, approver_id, ApprovalStatus.REJECTED, reason)

    async def _decide(
        self, request_id: str, approver_id: str, status: ApprovalStatus, reason: str | None
    ) -> None:
        check_id("approval request id", request_id)
        check_id("approver id", approver_id)
        store = self._store
        for _ in range(_ATTEMPTS):
            done = await self.retry_policy.run(
                lambda: store.decide(
                    request_id,
                    from_status=_PENDING,
                    to_status=status,
                    actor=approver_id,
                    reason=reason,
                    require_approver=True,
                    before_deadline=utcnow(),
                    not_requester=True,
                )
            )
            if done:
                logger.info("approval request %s %s by %r", request_id, status.value, approver_id)
                return
            await self._explain_failure(request_id, approver_id)
        raise ConcurrencyError(f"approval request {request_id!r} kept changing; try again")

    async def _explain_failure(self, request_id: str, approver_id: str) -> None:
        """Raise why a decision did not apply; return if it may be retried."""
        request = await self._store.load(request_id)
        if request is None:
            raise ApprovalNotFoundError(request_id)
        if approver_id not in request.approvers:
            raise NotAuthorizedError(request_id, approver_id)
        if approver_id == request.requested_by:
            raise SelfDecisionError(request_id, approver_id)
        if request.status is _PENDING and _overdue(request, utcnow()):
            await self._time_out(request_id)
            request = await self._store.load(request_id)
            assert request is not None
        if request.status is not _PENDING:
            raise AlreadyDecidedError(request_id, request.status)

    async def _time_out(self, request_id: str) -> bool:
        """Record the timeout of one overdue request (if nobody decided it meanwhile);
        return whether this call did."""
        store = self._store
        return await self.retry_policy.run(
            lambda: store.decide(
                request_id,
                from_status=_PENDING,
                to_status=ApprovalStatus.TIMEOUT,
                actor="system",
                overdue_at=utcnow(),
            )
        )

    async def timeout_pending_approvals(self) -> int:
        """Move every pending request past its deadline to TIMEOUT.

        Safe to run on several instances at once: each request is counted by
        exactly one of them.

        Returns:
            How many requests this call timed out.
        """
        count = await self._store.timeout_overdue(utcnow(), retry=self.retry_policy)
        if count:
            logger.info("timed out %d approval requests", count)
        return count

    async def wait_for_approval(
        self,
        approval_request_id: str,
        timeout: float = 3600.0,  # noqa: ASYNC109 - the spec's signature
    ) -> bool:
        """Wait until the request is decided (by any instance) or ``timeout`` seconds pass.

        On PostgreSQL the waiter is woken by the decision's NOTIFY; elsewhere it
        polls with backoff. When the request's own deadline passes first, it is
        timed out (recorded) and the result is False.

        Returns:
            True if approved; False if rejected, timed out, or still pending
            when ``timeout`` ran out (the request then stays pending).

        Raises:
            ApprovalNotFoundError: Unknown id.
        """
        check_id("approval request id", approval_request_id)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or math.isnan(timeout)
            or timeout < 0
        ):
            raise ValidationError(
                f"timeout must be a non-negative number of seconds, got {timeout!r}"
            )
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        async with self._store.watch(approval_request_id) as wait:
            while True:
                request = await self._load(approval_request_id)
                if request.status is not _PENDING:
                    return request.status is ApprovalStatus.APPROVED
                now = utcnow()
                left = end - loop.time()
                if _overdue(request, now):
                    if await self._time_out(request.id):
                        continue  # re-read: timed out now
                    request = await self._load(approval_request_id)
                    if request.status is not _PENDING:  # decided meanwhile
                        return request.status is ApprovalStatus.APPROVED
                    # The database did not find it overdue (clocks apart, a row edited
                    # by hand): look again later rather than spin.
                    if left <= 0:
                        return False
                    await wait(min(left, _RECHECK_SECONDS))
                    continue
                if left <= 0:
                    return False
                if request.deadline_at is not None:
                    left = min(left, (request.deadline_at - now).total_seconds())
                await wait(max(0.0, min(left, _RECHECK_SECONDS)))

    # -- reads -------------------------------------------------------------

    async def _load(self, request_id: str) -> ExternalAgentApprovalRequest:
        request = await self._store.load(request_id)
        if request is None:
            raise ApprovalNotFoundError(request_id)
        return request

    async def get_request(self, approval_request_id: str) -> ExternalAgentApprovalRequest | None:
        """The request as currently stored (a copy), or None."""
        return await self._store.load(approval_request_id)

    async def get_pending_approvals(
        self, approver_id: str, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests ``approver_id`` may decide, newest first."""
        return await self._store.list_by_approver(approver_id, _PENDING, limit)

    async def list_requests(
        self,
        *,
        status: ApprovalStatus | None = None,
        approver: str | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | None = None,
        decided_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests matching every given filter, newest first, in one query.

        ``involving`` keeps the requests a user made or is an approver of (what
        a non-admin may see).
        """
        return await self._store.list(
            status=status,
            approver=approver,
            agent=agent,
            requested_by=requested_by,
            involving=involving,
            decided_by=decided_by,
            limit=limit,
            offset=offset,
        )

    async def get_audit_trail(self, approval_request_id: str) -> list[AuditEvent]:
        """The request's audit events, oldest first (kept after it is deleted)."""
        return await self._store.events(approval_request_id)

    async def verify_audit(self, approval_request_id: str | None = None) -> AuditReport:
        """Verify the audit hash chains of one request or of all."""
        return await self._store.verify_audit(approval_request_id)


def _overdue(request: ExternalAgentApprovalRequest, now: datetime) -> bool:
    return request.deadline_at is not None and request.deadline_at <= now
