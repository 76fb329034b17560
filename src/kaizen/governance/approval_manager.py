"""The approval workflow: who must approve what, and exactly-once decisions.

The manager decides; the store persists. With a storage backend every read on
a decision path goes to the database, so any instance (process) can approve,
reject, time out or wait on a request another instance created.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from dataflow.errors import ConcurrencyError, DuplicateKeyError, ValidationError
from dataflow.jsonvalues import check_json
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance import policy
from kaizen.governance._claiming import Claims
from kaizen.governance._deadlines import Deadlines, Sweep
from kaizen.governance._rows import Change, apply_change, change_event
from kaizen.governance._shared import SharedSettings
from kaizen.governance._store import ApprovalStore
from kaizen.governance.approvers import ApproverDirectory
from kaizen.governance.errors import ApprovalNotFoundError
from kaizen.governance.memory import InMemoryApprovalStore
from kaizen.governance.models import (
    MAX_REASON,
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    Delegation,
    ExternalAgentApprovalRequest,
    check_comment,
    check_id,
    check_reason,
    check_rejection_reason,
)
from kaizen.governance.notify import ControlProtocol, notify_approvers
from kaizen.governance.routing import new_request, requirement_for, same_request

__all__ = ["ExternalAgentApprovalManager", "Sweep"]

logger = logging.getLogger("kaizen.governance")
_PENDING = ApprovalStatus.PENDING
#: Votes re-read and judged again when the request changed under them. Each lost
#: compare-and-set means another change applied, and a request takes few changes.
_ATTEMPTS = 50


class ExternalAgentApprovalManager(Deadlines, Claims, SharedSettings):
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
        quorum: int = 1,
        timeout_seconds: float = 3600,
        escalate_to: list[str] | ApprovalLevel | None = None,
        reason: str | None = None,
    ) -> ApprovalRequirement:
        """Shortcut: requests for ``external_agent_id`` go to ``approvers`` (a CUSTOM requirement).

        Args:
            external_agent_id: The agent.
            approvers: Who may vote.
            quorum: Distinct approvals needed (any rejection vetoes).
            timeout_seconds: Each deadline's length.
            escalate_to: Who an undecided request goes to at its deadline.
            reason: Shown to approvers.

        Returns:
            The requirement added (replacing any previous one for the agent; in
            this process only: :meth:`save_policy` shares it with every instance).
        """
        if not isinstance(approvers, list):
            raise ValidationError("approvers must be a list of approver ids")
        requirement = ApprovalRequirement(
            ApprovalLevel.CUSTOM,
            custom_approvers=list(approvers),
            approval_timeout_seconds=timeout_seconds,
            approval_reason=reason,
            quorum=quorum,
            escalate_to=escalate_to,
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
        reason: str | None = None,
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
            reason: Why the requester asks, shown to the approvers (default: the
                requirement's ``approval_reason``); at most 4000 characters.

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
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise ValidationError(f"reason must be a string of at most {MAX_REASON} characters")
        check_reason(reason, "reason")
        found = self._requirements.get(external_agent_id)
        if found is None:
            found = await self.stored_policy(external_agent_id)
        requirement = requirement_for(found, external_agent_id)
        request = new_request(
            self.approvers,
            external_agent_id,
            requested_by,
            metadata,
            requirement,
            request_id,
            reason,
        )
        store = self._store
        try:
            await self.retry_policy.run(lambda: store.save(request))
        except DuplicateKeyError as exc:
            if not same_request(await store.load(request.id), request):
                raise DuplicateKeyError(
                    f"approval request id {request.id!r} is taken by another request"
                ) from exc
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

    async def approve_request(
        self,
        approval_request_id: str,
        approver_id: str,
        *,
        comment: str | None = None,
        metadata: dict[str, Any] | None = None,
        on_behalf_of: str | None = None,
    ) -> ExternalAgentApprovalRequest:
        """Vote to approve a pending request; it is approved, exactly once across all
        instances, when its quorum of approvals for one version is recorded.

        Args:
            approval_request_id: The request.
            approver_id: Who votes (an approver, or a delegate of one).
            comment: Shown with the vote.
            metadata: Approve with changed arguments: the version approved is
                stored as ``approved_metadata`` (the request's own stays as it
                was) and the audit event shows the diff. Approvals count toward
                the quorum per version.
            on_behalf_of: For a delegate of several approvers: whom to vote for.

        Returns:
            The request after the vote (``PENDING`` until the quorum is met).

        Raises:
            ApprovalNotFoundError: Unknown id.
            NotAuthorizedError: ``approver_id`` is neither an approver nor an active
                delegate of one.
            SelfDecisionError: ``approver_id`` made the request (separation of
                duties: nobody decides their own request, whatever the routing).
            AlreadyVotedError: Their vote (or one cast for them) is recorded.
            AlreadyDecidedError: It was already approved, rejected or timed out
                (a request found past its deadline is escalated first, if its policy
                says so, and the vote goes ahead; otherwise it is timed out now).
            QuorumUnreachableError: After this approval no version of the metadata
                could reach the quorum.
        """
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise ValidationError("metadata must be a dict (the approved version)")
            check_json(metadata, "metadata")
        return await self._vote(
            approval_request_id, approver_id, "approve", comment, metadata, on_behalf_of
        )

    async def reject_request(
        self,
        approval_request_id: str,
        approver_id: str,
        reason: str,
        *,
        on_behalf_of: str | None = None,
    ) -> ExternalAgentApprovalRequest:
        """Reject a pending request with ``reason``: one eligible rejection is a veto.

        Returns:
            The rejected request.

        Raises:
            ApprovalNotFoundError: Unknown id.
            NotAuthorizedError: ``approver_id`` is neither one of its approvers nor
                an active delegate of one.
            SelfDecisionError: ``approver_id`` made the request.
            AlreadyVotedError: Their vote is recorded already.
            AlreadyDecidedError: It was already decided (or is past its deadline).
            ValidationError: ``reason`` is blank or longer than ``MAX_REASON`` characters.
        """
        check_rejection_reason(reason)
        return await self._vote(
            approval_request_id, approver_id, "reject", reason, None, on_behalf_of
        )

    async def _vote(
        self,
        request_id: str,
        voter: str,
        decision: str,
        comment: str | None,
        metadata: dict[str, Any] | None,
        on_behalf_of: str | None,
    ) -> ExternalAgentApprovalRequest:
        check_id("approval request id", request_id)
        check_id("approver id", voter)
        if on_behalf_of is not None:
            check_id("on_behalf_of", on_behalf_of)
        check_comment(comment)
        store = self._store
        mine: Change | None = None
        for _ in range(_ATTEMPTS):
            found, stored = await store.load_for_vote(request_id, voter)
            if found is None:
                raise ApprovalNotFoundError(request_id)
            request = found
            if mine is not None and _recorded(request, mine):
                return request  # a write that raised (a lost connection) had committed
            now = utcnow()
            if policy.overdue(request, now):
                await self._deadline_passed(request, now)
                continue
            delegations: list[Delegation] = []
            if on_behalf_of is not None or policy.needs_delegations(request, voter):
                delegations = stored
            change = policy.cast(
                request,
                voter,
                decision,
                now=now,
                comment=comment,
                metadata=metadata,
                delegations=delegations,
                on_behalf_of=on_behalf_of,
            )
            mine = change
            try:
                applied = await self.retry_policy.run(lambda: store.append(change))  # noqa: B023
            except DuplicateKeyError:
                continue  # a vote row for this voter landed meanwhile: judge again
            if applied:
                logger.info("approval request %s: %s by %r", request_id, change.event, voter)
                return apply_change(request, change, change_event(change))
        raise ConcurrencyError(f"approval request {request_id!r} kept changing; try again")

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
        approver: str | Sequence[str] | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | Sequence[str] | None = None,
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
        """Verify the audit hash chains of one request, or of all requests and of the
        stored policies and delegations."""
        report = await self._store.verify_audit(approval_request_id)
        if approval_request_id is None:
            await self._store.settings.verify(report)
        return report


def _recorded(request: ExternalAgentApprovalRequest, change: Change) -> bool:
    """Whether ``change``'s vote is among the request's (written by an attempt that
    did not hear back: the retry then found the request changed)."""
    vote = change.vote
    return vote is not None and any(
        v.approver_id == vote.approver_id and v.at == vote.at for v in request.votes
    )
