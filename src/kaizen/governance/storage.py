"""Persistence of approval requests and their audit trail on any DataFlow database.

The storage persists; it holds no business rules. State changes are conditional
writes whose WHERE clause carries the caller's preconditions, each written in
one transaction together with its audit event.
"""

from __future__ import annotations

import builtins
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from dataflow import ConcurrencyError, DataFlow, RetryPolicy
from dataflow.values import utcnow
from kaizen.governance._listing import listing_filter
from kaizen.governance._rows import content, decision_values, may_decide, timeout_event
from kaizen.governance._schema import (
    audit_from_row,
    audit_row,
    register,
    request_from_row,
    request_row,
)
from kaizen.governance._verify import verify_all, verify_one
from kaizen.governance._waiting import ANY, Notifications, Waiter, backoff_waiter
from kaizen.governance.audit import GENESIS, SWEPT, canonical, make_event
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


class ExternalAgentApprovalStorage:
    """Approval requests and their audit trail, stored through DataFlow.

    Requests live in table ``external_agent_approval_request`` (the spec's
    columns plus ``deadline_at``, ``audit_seq``, ``audit_head``), audit events
    in ``external_agent_approval_audit``. Indexed: status, agent, deadline and
    approver membership (GIN on PostgreSQL, an indexed side table elsewhere).

    Args:
        db: The DataFlow database; the two models are registered on it once.

    Example:
        >>> storage = ExternalAgentApprovalStorage(DataFlow("sqlite:///app.db"))
        >>> manager = ExternalAgentApprovalManager(storage_backend=storage)
    """

    def __init__(self, db: DataFlow) -> None:
        self.db = db
        self._req, self._aud = register(db)
        self._notifications = Notifications(db, CHANNEL) if db.dialect.supports_notify else None

    # -- the spec's methods ------------------------------------------------

    async def save(self, request: ExternalAgentApprovalRequest) -> str:
        """Insert a new request and its ``requested`` audit event atomically.

        ``request.created_at`` is set to the stored creation time.

        Returns:
            The request id.

        Raises:
            ValidationError: Bad ids, no approvers, non-JSON metadata (nothing is written).
            DuplicateKeyError: A request with this id exists.
        """
        request.validate()
        event = make_event(
            request.id, 0, "requested", request.requested_by, utcnow(), content(request), GENESIS
        )
        row = {"id": request.id, **request_row(request), "audit_seq": 0, "audit_head": event.hash}
        async with self.db.transaction() as tx:
            stored = await tx.insert(self._req, row)
            await tx.insert(self._aud, audit_row(event, canonical(event.details)))
        request.created_at = stored["created_at"]
        return request.id

    async def update(self, request: ExternalAgentApprovalRequest) -> None:
        """Overwrite a stored request with ``request``'s fields and audit the change.

        A persistence primitive (the spec's): it applies no rule, so whatever it
        writes, a self-approval included, is what the caller decided. Decide through
        the manager (:meth:`decide` underneath: one conditional write with the
        rules' preconditions).

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
        if not await self._append(where, values, event, notify=request.id):
            raise ConcurrencyError(f"approval request {request.id!r} was changed concurrently")

    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None:
        """The request with this id, or None."""
        row = await self.db.get(self._req, request_id)
        return request_from_row(row) if row is not None else None

    async def delete(self, request_id: str) -> bool:
        """Delete a request; its audit trail is kept and gains a ``deleted`` event.

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
            async with self.db.transaction() as tx:
                if await tx.delete_where(
                    self._req, {"id": request_id, "audit_seq": row["audit_seq"]}
                ):
                    await tx.insert(self._aud, audit_row(event, canonical(event.details)))
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
        return [request_from_row(r) for r in rows]

    async def list_by_approver(
        self, approver_id: str, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Requests ``approver_id`` may decide (exact id match, indexed), newest first."""
        filt: dict[str, Any] = {"approvers_json": {"$contains": approver_id}}
        if status is not None:
            filt["status"] = as_status(status).value
        rows = await self.db.select(self._req, filt, order_by="-created_at", limit=limit)
        return [request_from_row(r) for r in rows]

    async def list_pending_for_agent(
        self, external_agent_id: str, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests for one external agent, newest first."""
        filt = {"external_agent_id": external_agent_id, "status": ApprovalStatus.PENDING.value}
        rows = await self.db.select(self._req, filt, order_by="-created_at", limit=limit)
        return [request_from_row(r) for r in rows]

    async def count_by_status(self, status: ApprovalStatus) -> int:
        """How many requests have ``status``."""
        return await self.db.count(self._req, {"status": as_status(status).value})

    async def get_expired_pending_requests(
        self, timeout_seconds: int = 3600, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]:
        """Pending requests created more than ``timeout_seconds`` ago, oldest first.

        Read-only: :meth:`timeout_overdue` moves overdue requests to TIMEOUT.
        """
        cutoff = utcnow() - timedelta(seconds=timeout_seconds)
        filt = {"status": ApprovalStatus.PENDING.value, "created_at": {"$lt": cutoff}}
        rows = await self.db.select(self._req, filt, order_by="created_at", limit=limit)
        return [request_from_row(r) for r in rows]

    # -- conditional state changes ------------------------------------------

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
        """Move a request from ``from_status`` to ``to_status`` if its preconditions hold.

        One conditional UPDATE (status; with ``require_approver`` the actor's
        membership in the approvers; with ``not_requester`` an actor other than
        the requester; with ``overdue_at`` a deadline not after it;
        with ``before_deadline`` no deadline or one after it) plus the audit event,
        in one transaction. Of concurrent callers at most one gets True.
        ``actor`` becomes ``approved_by`` for APPROVED and REJECTED; ``reason``
        becomes ``rejection_reason``.

        Returns:
            True if this call made the change; False if a precondition failed
            (unknown id included): load the request to learn which.
        """
        check_id("request id", request_id)
        check_id("actor", actor)
        check_reason(reason)
        row = await self.db.get(self._req, request_id)
        if not may_decide(row, from_status, actor, require_approver, before_deadline):
            return False
        if not_requester and row is not None and row["requested_by"] == actor:
            return False
        assert row is not None
        now = utcnow()
        details = {"reason": reason} if reason is not None else {}
        seq, head = row["audit_seq"], await self._prev_hash(row)
        event = make_event(request_id, seq + 1, EVENT_NAMES[to_status], actor, now, details, head)
        values = decision_values(to_status, actor, reason, event)
        where: dict[str, Any] = {"id": request_id, "status": from_status.value, "audit_seq": seq}
        if require_approver:
            where["approvers_json"] = {"$contains": actor}
        if not_requester:
            where["requested_by"] = {"$ne": actor}
        if overdue_at is not None:
            where["deadline_at"] = {"$lte": overdue_at}
        if before_deadline is not None:
            where["$or"] = [
                {"deadline_at": {"$null": True}},
                {"deadline_at": {"$gt": before_deadline}},
            ]
        return await self._append(where, values, event, notify=request_id)

    async def _append(
        self,
        where: dict[str, Any],
        values: dict[str, Any],
        event: AuditEvent,
        notify: str | None = None,
    ) -> bool:
        async with self.db.transaction() as tx:
            if not await tx.update_where(self._req, where, values):
                return False
            await tx.insert(self._aud, audit_row(event, canonical(event.details)))
            if notify is not None:
                await tx.notify(CHANNEL, notify)
        return True

    async def timeout_overdue(
        self,
        now: datetime | None = None,
        *,
        batch_size: int = _PAGE,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Move every pending request whose deadline is not after ``now`` to TIMEOUT.

        Set-based and race-safe: each batch of overdue requests is claimed by one
        conditional UPDATE (still pending, still overdue, same audit seq) that
        tags the rows with this sweep's token; the rows carrying the token are
        exactly the ones this call moved, so concurrent sweepers never count a
        row twice. Their ``timed_out`` events are written in the same transaction.

        Args:
            now: The time deadlines are judged at (default: the current time).
            batch_size: Requests claimed per transaction.
            retry: Runs each batch again after it lost a race (each batch commits
                on its own, so the count stays true).

        Returns:
            How many requests this call timed out.
        """
        now = now or utcnow()
        filt = {"status": ApprovalStatus.PENDING.value, "deadline_at": {"$lte": now}}
        total, previous = 0, None
        while True:
            rows = await self.db.select(self._req, filt, order_by=["deadline_at"], limit=batch_size)
            ids = [r["id"] for r in rows]
            if not rows or ids == previous:
                return total
            if retry is None:
                total += await self._expire(rows, now)
            else:
                total += await retry.run(lambda: self._expire(rows, now))  # noqa: B023
            if len(rows) < batch_size:
                return total
            previous = ids

    async def _expire(self, rows: list[dict[str, Any]], now: datetime) -> int:
        token = f"{SWEPT}{uuid.uuid4().hex}"
        by_seq: dict[int, list[str]] = {}
        for row in rows:
            by_seq.setdefault(row["audit_seq"], []).append(row["id"])
        values = {"status": ApprovalStatus.TIMEOUT.value, "approved_at": now, "audit_head": token}
        async with self.db.transaction() as tx:
            for seq, ids in by_seq.items():  # one statement per seq: almost always one
                where = {
                    "id": {"$in": ids},
                    "status": ApprovalStatus.PENDING.value,
                    "deadline_at": {"$lte": now},
                    "audit_seq": seq,
                }
                await tx.update_where(self._req, where, {**values, "audit_seq": seq + 1})
            won = await tx.select(
                self._req, {"id": {"$in": [r["id"] for r in rows]}, "audit_head": token}
            )
            if not won:
                return 0
            # A claimed row's seq was unchanged, so its head before the claim is the one read.
            heads = {r["id"]: r["audit_head"] for r in rows}
            events = [timeout_event(r, heads[r["id"]], token, now) for r in won]
            await tx.insert_many(self._aud, [audit_row(e, canonical(e.details)) for e in events])
            await tx.notify(CHANNEL, ANY)
        return len(events)

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
        approver: str | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | None = None,
        decided_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ExternalAgentApprovalRequest]:
        """Requests matching every filter given, newest first (ties broken by id).

        One query, whichever filters are combined; each filter has an index
        to start from (status, agent, requester, decider, approver membership).

        Args:
            status: Only requests with this status.
            approver: Only requests this user is an approver of.
            agent: Only requests for this external agent.
            requested_by: Only requests this user made.
            involving: Only requests this user made or is an approver of.
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
        return [request_from_row(r) for r in rows]
