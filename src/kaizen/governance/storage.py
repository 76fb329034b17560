"""Persistence of approval requests and their audit trail on any DataFlow database.

The storage persists; it holds no business rules. State changes are conditional
writes whose WHERE clause carries the caller's preconditions, each written in
one transaction together with its audit event.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dataflow import ConcurrencyError, DataFlow, Related, Step, WriteBatch
from dataflow.values import utcnow
from kaizen.governance._listing import listing_filter
from kaizen.governance._rows import Change, change_event, content
from kaizen.governance._schema import (
    audit_from_row,
    audit_row,
    change_values,
    register,
    request_from_row,
    request_row,
    vote_from_row,
    vote_row,
)
from kaizen.governance._settings import SettingsStorage
from kaizen.governance._verify import verify_all, verify_one
from kaizen.governance._waiting import ANY, Notifications, Waiter, backoff_waiter
from kaizen.governance.audit import GENESIS, SWEPT, canonical, make_event
from kaizen.governance.errors import ApprovalNotFoundError
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    Delegation,
    ExternalAgentApprovalRequest,
    Vote,
    as_status,
    check_id,
)

__all__ = ["CHANNEL", "EVENT_NAMES", "ExternalAgentApprovalStorage"]

#: PostgreSQL NOTIFY channel announcing decided requests (payload: request id, or ``*``).
CHANNEL = "kaizen_approval_decided"
#: Audit event name of each status a request can move to.
EVENT_NAMES = {
    ApprovalStatus.PENDING: "requested",
    ApprovalStatus.APPROVED: "approved",
    ApprovalStatus.REJECTED: "rejected",
    ApprovalStatus.TIMEOUT: "timed_out",
}
_PAGE = 200
_PENDING_VALUE = ApprovalStatus.PENDING.value


def _rows_of(change: Change) -> tuple[Any, ...]:
    """The rows applying ``change`` writes: its request's, and its delegation's."""
    if change.delegation is None:
        return (change.request_id,)
    return change.request_id, (change.delegation.approver_id, change.delegation.delegate_id)


class ExternalAgentApprovalStorage:
    """Approval requests and their audit trail, stored through DataFlow.

    Requests live in table ``external_agent_approval_request`` (the spec's
    columns plus ``deadline_at``, ``audit_seq``, ``audit_head`` and the frozen
    policy), audit events in ``external_agent_approval_audit``, votes in
    ``external_agent_approval_vote``; stored policies and delegations in
    :attr:`settings`. Indexed: status, agent, deadline and approver membership
    (GIN on PostgreSQL, an indexed side table elsewhere); votes by request.

    Args:
        db: The DataFlow database; the models are registered on it once.

    Example:
        >>> storage = ExternalAgentApprovalStorage(DataFlow("sqlite:///app.db"))
        >>> manager = ExternalAgentApprovalManager(storage_backend=storage)
    """

    def __init__(self, db: DataFlow) -> None:
        self.db = db
        self._req, self._aud, self._vote = register(db)
        self.settings = SettingsStorage(db)
        self._notifications = Notifications(db, CHANNEL) if db.dialect.supports_notify else None

    # -- the spec's methods ------------------------------------------------

    async def save(self, request: ExternalAgentApprovalRequest) -> str:
        """Insert a new request and its ``requested`` audit event atomically.

        The request keeps its timezone-aware ``created_at`` (an imported or
        backdated request is then as old as it says, e.g. for
        :meth:`get_expired_pending_requests`); None means now. ``request.created_at``
        is set to the stored value.

        Returns:
            The request id.

        Raises:
            ValidationError: Bad ids, no approvers, non-JSON metadata, a naive
                ``created_at`` (nothing is written).
            DuplicateKeyError: A request with this id exists.
        """
        request.validate()
        now = utcnow()
        event = make_event(
            request.id, 0, "requested", request.requested_by, now, content(request), GENESIS
        )
        row = {
            "id": request.id,
            **request_row(request),
            "created_at": now if request.created_at is None else request.created_at,
            "audit_seq": 0,
            "audit_head": event.hash,
        }
        batch = self.db.batch()
        batch.insert(self._req, row)
        batch.insert(self._aud, audit_row(event, canonical(event.details)))
        await batch.run()
        request.created_at = row["created_at"].astimezone(UTC)
        return request.id

    async def update(self, request: ExternalAgentApprovalRequest) -> None:
        """Overwrite a stored request with ``request``'s fields and audit the change.

        A persistence primitive (the spec's): it applies no rule, so whatever it
        writes, a self-approval included, is what the caller decided. Decide through
        the manager (its policy computes a change, :meth:`append` applies it if
        nothing changed meanwhile).

        Raises:
            ApprovalNotFoundError: No such request.
            ConcurrencyError: The request changed between read and write.
        """
        request.validate()
        row = await self.db.get(self._req, request.id)
        if row is None:
            raise ApprovalNotFoundError(request.id)
        changed = row["status"] != request.status.value
        name = EVENT_NAMES[request.status] if changed else "updated"
        actor = request.approved_by or "system"
        prev = await self._prev_hash(row)
        event = make_event(
            request.id, row["audit_seq"] + 1, name, actor, utcnow(), content(request), prev
        )
        values = {**request_row(request), "audit_seq": event.seq, "audit_head": event.hash}
        where = {"id": request.id, "audit_seq": row["audit_seq"]}
        batch = self.db.batch()
        moved = batch.update_where(self._req, where, values)
        batch.insert(self._aud, audit_row(event, canonical(event.details)), when=moved)
        batch.notify(CHANNEL, request.id, when=moved)
        if not (await batch.run())[moved]:
            raise ConcurrencyError(f"approval request {request.id!r} was changed concurrently")

    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None:
        """The request with this id (votes included), or None: one round trip."""
        row = await self.db.get_with(self._req, request_id, votes=self._votes_of(request_id))
        return None if row is None else await self._loaded(row)

    async def load_for_vote(
        self, request_id: str, voter: str
    ) -> tuple[ExternalAgentApprovalRequest | None, builtins.list[Delegation]]:
        """The request (as :meth:`load`) and the stored delegations to ``voter``, read
        together: all a vote is judged on, in one round trip."""
        row = await self.db.get_with(
            self._req,
            request_id,
            votes=self._votes_of(request_id),
            delegations=self.settings.delegations_to(voter),
        )
        if row is None:
            return None, []
        delegations = self.settings.delegations_of(row.pop("delegations"))
        return await self._loaded(row), delegations

    def _votes_of(self, request_id: str) -> Related:
        return Related(self._vote, {"request_id": request_id}, order_by="seq")

    async def _loaded(self, row: dict[str, Any]) -> ExternalAgentApprovalRequest:
        votes = [vote_from_row(v) for v in row.pop("votes")]
        request = request_from_row(row, votes or None)
        if row["audit_head"].startswith(SWEPT):
            request.audit_head = await self._prev_hash(row)
        return request

    async def delete(self, request_id: str) -> bool:
        """Delete a request and its votes; its audit trail is kept and gains a
        ``deleted`` event.

        Returns:
            Whether the request existed.
        """
        for _ in range(5):
            row = await self.db.get(self._req, request_id)
            if row is None:
                return False
            prev = await self._prev_hash(row)
            event = make_event(
                request_id, row["audit_seq"] + 1, "deleted", "system", utcnow(), {}, prev
            )
            batch = self.db.batch()
            gone = batch.delete_where(self._req, {"id": request_id, "audit_seq": row["audit_seq"]})
            batch.delete_where(self._vote, {"request_id": request_id}, when=gone)
            batch.insert(self._aud, audit_row(event, canonical(event.details)), when=gone)
            if (await batch.run())[gone]:
                return True
        raise ConcurrencyError(f"approval request {request_id!r} keeps changing; delete not done")

    async def list_by_status(
        self, status: ApprovalStatus, limit: int = 100, offset: int = 0
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests with ``status``, newest first (ties broken by id)."""
        rows = await self.db.select(
            self._req,
            {"status": as_status(status).value},
            order_by="-created_at",
            limit=limit,
            offset=offset,
        )
        return await self._requests(rows)

    async def list_by_approver(
        self, approver_id: str, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests ``approver_id`` may decide (exact id match, indexed), newest first."""
        filt: dict[str, Any] = {"approvers_json": {"$contains": approver_id}}
        if status is not None:
            filt["status"] = as_status(status).value
        rows = await self.db.select(self._req, filt, order_by="-created_at", limit=limit)
        return await self._requests(rows)

    async def list_pending_for_agent(
        self, external_agent_id: str, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests for one external agent, newest first."""
        filt = {"external_agent_id": external_agent_id, "status": ApprovalStatus.PENDING.value}
        rows = await self.db.select(self._req, filt, order_by="-created_at", limit=limit)
        return await self._requests(rows)

    async def count_by_status(self, status: ApprovalStatus) -> int:
        """How many requests have ``status``."""
        return await self.db.count(self._req, {"status": as_status(status).value})

    async def get_expired_pending_requests(
        self, timeout_seconds: int = 3600, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests created more than ``timeout_seconds`` ago, oldest first.

        Read-only: the manager's sweep (``timeout_pending_approvals``) escalates or
        times out overdue requests.
        """
        cutoff = utcnow() - timedelta(seconds=timeout_seconds)
        filt = {"status": ApprovalStatus.PENDING.value, "created_at": {"$lt": cutoff}}
        rows = await self.db.select(self._req, filt, order_by="created_at", limit=limit)
        return await self._requests(rows)

    # -- conditional state changes ------------------------------------------

    async def append(self, change: Change) -> bool:
        """Apply ``change`` if its request is still at ``change.seq``; False otherwise.

        One conditional UPDATE (id and audit seq), the audit event and the vote
        the change records, as one write batch (one round trip on PostgreSQL and
        MySQL; with a NOTIFY on PostgreSQL when the change is announced). Of
        concurrent changes computed from the same state exactly one applies. A
        delegate's vote first locks its delegation row, still active: a revoke
        committed before it makes it False, one after it waits for it.
        """
        batch = self.db.batch()
        moved = self._add_change(batch, change, announce=change.announce)
        return bool((await batch.run())[moved])

    async def append_many(self, changes: Sequence[Change]) -> builtins.list[bool]:
        """Apply each change whose request is still at its seq, all in one write batch.

        Rows are changed in id order, so concurrent batches never deadlock on
        each other; a request (or delegation) changed twice gets its second change
        in a batch of its own (a batch writes each row once). Returns, per change in the order
        given, whether it applied.
        """
        applied = [False] * len(changes)
        pending = sorted(range(len(changes)), key=lambda i: changes[i].request_id)
        while pending:
            seen: set[Any] = set()
            now: builtins.list[int] = []
            later: builtins.list[int] = []
            for i in pending:
                rows = _rows_of(changes[i])
                (later if seen.intersection(rows) else now).append(i)
                seen.update(rows)
            batch = self.db.batch()
            steps = [(i, self._add_change(batch, changes[i], announce=False)) for i in now]
            batch.notify(CHANNEL, ANY)
            result = await batch.run()
            for i, step in steps:
                applied[i] = bool(result[step])
            pending = later
        return applied

    def _add_change(self, batch: WriteBatch, change: Change, *, announce: bool) -> Step:
        """Add ``change``'s steps to ``batch``: the step that tells whether it applied."""
        held = None
        if change.delegation is not None:  # revoked (or ended) since it was read: not applied
            held = self.settings.hold(batch, change.delegation, change.at)
        event = change_event(change)
        values = {**change_values(change.fields), "audit_seq": event.seq, "audit_head": event.hash}
        where = {"id": change.request_id, "audit_seq": change.seq}
        moved = batch.update_where(self._req, where, values, when=held)
        batch.insert(self._aud, audit_row(event, canonical(event.details)), when=moved)
        if change.vote is not None:
            batch.insert(self._vote, vote_row(event, change.vote), when=moved)
        if announce:
            batch.notify(CHANNEL, change.request_id, when=moved)
        return moved

    async def overdue(
        self, now: datetime, limit: int = _PAGE
    ) -> builtins.list[ExternalAgentApprovalRequest]:
        """Pending requests whose deadline is not after ``now``, earliest deadline first."""
        filt = {"status": ApprovalStatus.PENDING.value, "deadline_at": {"$lte": now}}
        rows = await self.db.select(self._req, filt, order_by=["deadline_at", "id"], limit=limit)
        return await self._requests(rows)

    async def _requests(
        self, rows: builtins.list[dict[str, Any]]
    ) -> builtins.list[ExternalAgentApprovalRequest]:
        """The requests of ``rows``, their votes read in one query (only rows that may have any)."""
        voted = [r["id"] for r in rows if r["audit_seq"]]
        by_request: dict[str, builtins.list[Vote]] = {}
        if voted:
            found = await self.db.select(self._vote, {"request_id": {"$in": voted}}, order_by="seq")
            for v in found:
                by_request.setdefault(v["request_id"], []).append(vote_from_row(v))
        requests = []
        for row in rows:
            request = request_from_row(row, by_request.get(row["id"]))
            # What a change chains onto (the row's head, unless a sweep left its token).
            if row["status"] == _PENDING_VALUE and row["audit_head"].startswith(SWEPT):
                request.audit_head = await self._prev_hash(row)
            requests.append(request)
        return requests

    async def _prev_hash(self, row: dict[str, Any]) -> str:
        """Hash of the row's latest event (read back when a sweep left its token instead)."""
        head: str = row["audit_head"]
        if not head.startswith(SWEPT):
            return head
        last = await self.db.select(self._aud, {"request_id": row["id"], "seq": row["audit_seq"]})
        return str(last[0]["hash"]) if last else head

    # -- audit -------------------------------------------------------------

    async def events(self, request_id: str) -> list[AuditEvent]:
        """The audit trail of a request (kept after the request is deleted), oldest first."""
        rows = await self.db.select(self._aud, {"request_id": request_id}, order_by="seq")
        return [audit_from_row(r)[0] for r in rows]

    async def verify_audit(self, request_id: str | None = None) -> AuditReport:
        """Verify the hash chains of one request, or of all requests (deleted ones included).

        Returns:
            A report; ``report.ok`` is False when an event was edited, removed or
            inserted, or a request row disagrees with its trail.
        """
        if request_id is not None:
            return await verify_one(self.db, self._req, self._aud, request_id)
        return await verify_all(self.db, self._req, self._aud)

    # -- waiting -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(self, request_id: str) -> AsyncIterator[Waiter]:
        """Yield ``wait(seconds)``, returning early when ``request_id`` may have changed.

        PostgreSQL listens for the NOTIFY each decision sends in its transaction
        (one listening connection per storage and event loop, shared by all
        waiters); other databases sleep with exponential backoff (50 ms doubling to 1 s)
        and the caller re-reads the request.
        """
        check_id("request id", request_id)
        if self._notifications is not None:
            async with self._notifications.subscribe(request_id) as wait:
                yield wait
        else:
            yield backoff_waiter()

    # -- listing (last: the method's name shadows the builtin in the class body) --

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
        """Requests matching every filter given, newest first (ties broken by id).

        One query, whichever filters are combined; each filter has an index
        to start from (status, agent, requester, decider, approver membership).

        Args:
            status: Only requests with this status.
            approver: Only requests this user is an approver of (a list: any of them).
            agent: Only requests for this external agent.
            requested_by: Only requests this user made.
            involving: Only requests this user made or is an approver of (a list:
                the first user's requests and those routed to any of them).
            decided_by: Only requests this user approved or rejected.
            limit: At most this many.
            offset: Skip this many first.
        """
        rows = await self.db.select(
            self._req,
            listing_filter(status, approver, agent, requested_by, involving, decided_by),
            order_by="-created_at",
            limit=limit,
            offset=offset,
        )
        return await self._requests(rows)
