"""The in-process store the manager uses when no storage backend is configured.

It offers the same methods as :class:`~kaizen.governance.storage.ExternalAgentApprovalStorage`
with the same semantics (compare-and-set changes, hash-chained audit, votes,
stored policies and delegations), for one process only. A change is atomic
because no ``await`` separates its check from its write.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from dataflow.errors import DuplicateKeyError, ValidationError
from dataflow.values import utcnow
from kaizen.governance._listing import listing_filter
from kaizen.governance._rows import Change, apply_change, change_event, content
from kaizen.governance._seal import SEALED
from kaizen.governance._settings import InMemorySettings
from kaizen.governance.audit import GENESIS, canonical, make_event, verify_chain
from kaizen.governance.errors import ApprovalNotFoundError
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    Delegation,
    ExternalAgentApprovalRequest,
    as_status,
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
        self.settings = InMemorySettings()
        self._requests: dict[str, ExternalAgentApprovalRequest] = {}
        self._order: dict[str, int] = {}
        self._events: dict[str, list[AuditEvent]] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._counter = 0

    def _append(self, request_id: str, name: str, actor: str, details: dict[str, Any]) -> None:
        chain = self._events.setdefault(request_id, [])
        prev = chain[-1].hash if chain else GENESIS
        event = make_event(request_id, len(chain), name, actor, utcnow(), details, prev)
        self._record(self._requests.get(request_id), event)

    def _record(self, request: ExternalAgentApprovalRequest | None, event: AuditEvent) -> None:
        """Append ``event`` to its chain; make it ``request``'s head; wake its waiters."""
        self._events.setdefault(event.request_id, []).append(event)
        if request is not None:
            request.audit_seq, request.audit_head = event.seq, event.hash
        waiting = self._changed.pop(event.request_id, None)
        if waiting is not None:
            waiting.set()

    async def save(self, request: ExternalAgentApprovalRequest) -> str:
        """Store a new request (a copy) and its ``requested`` event.

        The request keeps its ``created_at`` (None means now), as the DataFlow storage does.
        """
        request.validate()
        if request.id in self._requests:
            raise DuplicateKeyError(f"approval request {request.id!r} already exists")
        if request.created_at is None:
            request.created_at = utcnow()
        self._counter += 1
        self._order[request.id] = self._counter
        self._requests[request.id] = copy.deepcopy(request)
        self._requests[request.id].votes = []
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
        self._requests[request.id].votes = stored.votes  # update() does not touch votes
        details = copy.deepcopy(content(request))
        self._append(request.id, name, request.approved_by or "system", details)

    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None:
        """A copy of the request, or None."""
        found = self._requests.get(_key(request_id))
        return copy.deepcopy(found) if found is not None else None

    async def load_for_vote(
        self, request_id: str, voter: str
    ) -> tuple[ExternalAgentApprovalRequest | None, list[Delegation]]:
        """The request (a copy) and the stored delegations to ``voter``."""
        return await self.load(request_id), await self.settings.delegations(delegate=voter)

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

    async def append(self, change: Change) -> bool:
        """Same contract as :meth:`ExternalAgentApprovalStorage.append`."""
        request = self._requests.get(change.request_id)
        if request is None or request.audit_seq != change.seq:
            return False
        if change.delegation is not None and not self.settings.holds(change.delegation, change.at):
            return False
        event = change_event(change)
        self._record(apply_change(request, change, event), event)
        return True

    async def append_many(self, changes: Sequence[Change]) -> builtins.list[bool]:
        """Same contract as :meth:`ExternalAgentApprovalStorage.append_many`."""
        return [await self.append(change) for change in changes]

    async def overdue(
        self, now: datetime, limit: int = 200
    ) -> builtins.list[ExternalAgentApprovalRequest]:
        """Pending requests whose deadline is not after ``now``, earliest deadline first."""
        found = [
            r
            for r in self._requests.values()
            if r.status is ApprovalStatus.PENDING
            and r.deadline_at is not None
            and r.deadline_at <= now
        ]
        found.sort(key=lambda r: (r.deadline_at, r.id))
        return [copy.deepcopy(r) for r in found[:limit]]

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
        approver: str | Sequence[str] | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | Sequence[str] | None = None,
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
                and (approver is None or _routed(r, approver))
                and (agent is None or r.external_agent_id == agent)
                and (requested_by is None or r.requested_by == requested_by)
                and _involves(r, involving)
                and (
                    decided_by is None
                    or (r.approved_by == decided_by and decided_by in r.approvers)
                )
            )

        return self._newest_first(keep)[offset : offset + limit]


def _routed(request: ExternalAgentApprovalRequest, users: str | Sequence[str]) -> bool:
    """The ``approver`` filter: routed to the user (or to any of them)."""
    return any(u in request.approvers for u in ([users] if isinstance(users, str) else users))


def _involves(request: ExternalAgentApprovalRequest, users: str | Sequence[str] | None) -> bool:
    """The ``involving`` filter: made by the first user, or routed to any of them."""
    if users is None:
        return True
    users = [users] if isinstance(users, str) else list(users)
    return request.requested_by == users[0] or any(u in request.approvers for u in users)


def _key(request_id: object) -> str:
    """A request id to look up (as the database storage, which refuses non-strings)."""
    if not isinstance(request_id, str):
        raise ValidationError(f"a request id is a str, got {type(request_id).__name__}")
    return request_id
