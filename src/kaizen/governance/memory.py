"""The in-process store the manager uses when no storage backend is configured.

It offers the same methods as :class:`~kaizen.governance.storage.ExternalAgentApprovalStorage`
with the same semantics (conditional decisions, hash-chained audit), for one
process only. Decisions are atomic because no ``await`` separates their check
from their write.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from dataflow.errors import DuplicateKeyError, ValidationError
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance._listing import listing_filter
from kaizen.governance._rows import content
from kaizen.governance._seal import SEALED
from kaizen.governance.audit import GENESIS, canonical, make_event, verify_chain
from kaizen.governance.errors import ApprovalNotFoundError
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    ExternalAgentApprovalRequest,
    as_status,
    check_id,
    check_reason,
)

__all__ = ["InMemoryApprovalStore"]

_EVENT_NAMES = {
    ApprovalStatus.PENDING: "requested",
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.REJECTED: "rejected",
    ApprovalStatus.TIMEOUT: "timed_out",
}


class InMemoryApprovalStore:
    """Approval requests and their audit trail in memory (lost when the process ends)."""

    def __init__(self) -> None:
        self._requests: dict[str, ExternalAgentApprovalRequest] = {}
        self._order: dict[str, int] = {}
        self._events: dict[str, list[AuditEvent]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._counter = 0

    def _append(
        self,
        request_id: str,
        name: str,
        actor: str,
        details: dict[str, Any],
        when: datetime | None = None,
    ) -> None:
        chain = self._events.setdefault(request_id, [])
        prev = chain[-1].hash if chain else GENESIS
        when = when or utcnow()
        chain.append(make_event(request_id, len(chain), name, actor, when, details, prev))
        event = self._changed.pop(request_id, None)
        if event is not None:
            event.set()

    async def save(self, request: ExternalAgentApprovalRequest) -> str:
        """Store a new request (a copy) and its ``requested`` event."""
        request.validate()
        if request.id in self._requests:
            raise DuplicateKeyError(f"approval request {request.id!r} already exists")
        self._counter += 1
        self._order[request.id] = self._counter
        self._requests[request.id] = copy.deepcopy(request)
        details = copy.deepcopy(content(request))  # the storage's event: it seals the request
        self._append(request.id, "requested", request.requested_by, details)
        return request.id

    async def update(self, request: ExternalAgentApprovalRequest) -> None:
        """Overwrite a stored request with ``request``'s fields and audit the change.

        Raises:
            ApprovalNotFoundError: No such request.
        """
        request.validate()
        stored = self._requests.get(request.id)
        if stored is None:
            raise ApprovalNotFoundError(request.id)
        name = _EVENT_NAMES[request.status] if stored.status is not request.status else "updated"
        self._requests[request.id] = copy.deepcopy(request)
        details = copy.deepcopy(content(request))
        self._append(request.id, name, request.approved_by or "system", details)

    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None:
        """A copy of the request, or None."""
        found = self._requests.get(_key(request_id))
        return copy.deepcopy(found) if found is not None else None

    async def delete(self, request_id: str) -> bool:
        """Forget a request; its audit trail stays and gains a ``deleted`` event."""
        if self._requests.pop(_key(request_id), None) is None:
            return False
        self._append(request_id, "deleted", "system", {})
        return True

    def _newest_first(
        self, keep: Callable[[ExternalAgentApprovalRequest], bool]
    ) -> list[ExternalAgentApprovalRequest]:
        found = [r for r in self._requests.values() if keep(r)]
        found.sort(key=lambda r: (r.created_at, self._order[r.id]), reverse=True)
        return [copy.deepcopy(r) for r in found]

    async def list_by_approver(
        self, approver_id: str, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests ``approver_id`` may decide, newest first."""
        wanted = None if status is None else as_status(status)
        found = self._newest_first(
            lambda r: approver_id in r.approvers and (wanted is None or r.status is wanted)
        )
        return found[:limit]

    async def list_pending_for_agent(
        self, external_agent_id: str, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests for one external agent, newest first."""
        found = self._newest_first(
            lambda r: (
                r.external_agent_id == external_agent_id and r.status is ApprovalStatus.PENDING
            )
        )
        return found[:limit]

    async def list_by_status(
        self, status: ApprovalStatus, limit: int = 100, offset: int = 0
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests with ``status``, newest first."""
        wanted = as_status(status)
        return self._newest_first(lambda r: r.status is wanted)[offset : offset + limit]

    async def count_by_status(self, status: ApprovalStatus) -> int:
        """How many requests have ``status``."""
        wanted = as_status(status)
        return sum(1 for r in self._requests.values() if r.status is wanted)

    async def decide(
        self,
        request_id: str,
        *,
        from_status: ApprovalStatus,
        to_status: ApprovalStatus,
        actor: str,
        reason: str | None = None,
        require_approver: bool = False,
        overdue_at: datetime | None = None,
        before_deadline: datetime | None = None,
        not_requester: bool = False,
    ) -> bool:
        """Same contract as :meth:`ExternalAgentApprovalStorage.decide`."""
        check_id("request id", request_id)
        check_id("actor", actor)
        check_reason(reason)
        request = self._requests.get(request_id)
        if request is None or request.status is not from_status:
            return False
        if require_approver and actor not in request.approvers:
            return False
        if not_requester and actor == request.requested_by:
            return False
        deadline = request.deadline_at
        if overdue_at is not None and (deadline is None or deadline > overdue_at):
            return False
        if before_deadline is not None and deadline is not None and deadline <= before_deadline:
            return False
        self._apply(request, to_status, actor, reason)
        return True

    def _apply(
        self,
        request: ExternalAgentApprovalRequest,
        status: ApprovalStatus,
        actor: str,
        reason: str | None,
    ) -> None:
        # The row and its event share one time, as the storage's conditional write does.
        now = utcnow()
        request.status = status
        request.approved_at = now
        if status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            request.approved_by = actor
        if reason is not None:
            request.rejection_reason = reason
        details = {"reason": reason} if reason is not None else {}
        self._append(request.id, _EVENT_NAMES[status], actor, details, now)

    async def timeout_overdue(
        self, now: datetime | None = None, *, retry: RetryPolicy | None = None
    ) -> int:
        """Move pending requests whose deadline is not after ``now`` to TIMEOUT; return how many."""
        now = now or utcnow()
        overdue = [
            r
            for r in self._requests.values()
            if r.status is ApprovalStatus.PENDING
            and r.deadline_at is not None
            and r.deadline_at <= now
        ]
        for request in overdue:
            self._apply(request, ApprovalStatus.TIMEOUT, "system", None)
        return len(overdue)

    async def get_expired_pending_requests(
        self, timeout_seconds: int = 3600, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests older than ``timeout_seconds``, oldest first."""
        cutoff = utcnow() - timedelta(seconds=timeout_seconds)
        found = self._newest_first(
            lambda r: r.status is ApprovalStatus.PENDING and r.created_at < cutoff
        )
        return found[::-1][:limit]

    async def events(self, request_id: str) -> list[AuditEvent]:
        """The audit trail of a request, oldest first."""
        return list(self._events.get(request_id, []))

    async def verify_audit(self, request_id: str | None = None) -> AuditReport:
        """Verify the hash chains and that each request holds what its trail seals.

        See :func:`kaizen.governance.audit.verify_chain`.
        """
        report = AuditReport()
        ids = [request_id] if request_id is not None else list(self._events)
        for rid in ids:
            chain = self._events.get(rid, [])
            if not chain:
                continue
            stored = self._requests.get(rid)
            head = (chain[-1].seq, chain[-1].hash) if stored is not None else None
            row = {n: getattr(stored, n) for n in SEALED} if stored is not None else None
            verify_chain(rid, [(e, canonical(e.details)) for e in chain], head, report, row)
        return report

    @contextlib.asynccontextmanager
    async def watch(self, request_id: str) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
        """Yield ``wait(seconds)``, returning early when the request changes."""
        self._changed.setdefault(request_id, asyncio.Event())

        async def wait(seconds: float) -> None:
            event = self._changed.setdefault(request_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()

        yield wait

    # last: the name shadows the builtin in the class body
    async def list(
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
    ) -> builtins.list[ExternalAgentApprovalRequest]:
        """Same contract as :meth:`ExternalAgentApprovalStorage.list`."""
        listing_filter(status, approver, agent, requested_by, involving, decided_by)  # validates
        wanted = None if status is None else as_status(status)

        def keep(r: ExternalAgentApprovalRequest) -> bool:
            return (
                (wanted is None or r.status is wanted)
                and (approver is None or approver in r.approvers)
                and (agent is None or r.external_agent_id == agent)
                and (requested_by is None or r.requested_by == requested_by)
                and (involving is None or involving in (r.requested_by, *r.approvers))
                and (
                    decided_by is None
                    or (r.approved_by == decided_by and decided_by in r.approvers)
                )
            )

        return self._newest_first(keep)[offset : offset + limit]


def _key(request_id: object) -> str:
    """A request id to look up (as the database storage, which refuses non-strings)."""
    if not isinstance(request_id, str):
        raise ValidationError(f"a request id is a str, got {type(request_id).__name__}")
    return request_id
