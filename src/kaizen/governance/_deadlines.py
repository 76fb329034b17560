"""The manager's deadlines: escalation or timeout at a request's deadline, the sweep
that acts on every overdue request, and waiting for a decision (a mixin).

Every deadline change is computed by the policy (:func:`~kaizen.governance.policy.on_deadline`)
and applied by compare-and-set, so sweepers, voters and waiters on any instance act
on each deadline exactly once.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from dataflow.errors import ValidationError
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance import policy
from kaizen.governance._rows import Change, apply_change, change_event
from kaizen.governance._store import ApprovalStore
from kaizen.governance.models import ApprovalStatus, ExternalAgentApprovalRequest, check_id
from kaizen.governance.notify import ControlProtocol, notify_approvers

__all__ = ["Deadlines", "Sweep"]

logger = logging.getLogger("kaizen.governance")
_PENDING = ApprovalStatus.PENDING
#: Overdue requests acted on per sweep transaction.
_SWEEP_PAGE = 200
#: Longest single sleep of ``wait_for_approval`` before it re-reads the request.
_RECHECK_SECONDS = 5.0


@dataclass
class Sweep:
    """What one sweep did: the requests it escalated and the ones it timed out."""

    escalated: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)


class Deadlines:
    """Escalation, timeouts and waiting, through the manager's store."""

    _store: ApprovalStore
    retry_policy: RetryPolicy
    protocol: ControlProtocol | None
    base_url: str

    _load: Callable[[str], Awaitable[ExternalAgentApprovalRequest]]  # the manager's

    async def _deadline_passed(self, request: ExternalAgentApprovalRequest, now: datetime) -> bool:
        """Escalate or time out an overdue request (unless it changed); return whether
        this call did."""
        change = policy.on_deadline(request, now)
        store = self._store
        if not await self.retry_policy.run(lambda: store.append(change)):
            return False
        await self._after_deadline(request, change)
        return True

    async def _after_deadline(self, request: ExternalAgentApprovalRequest, change: Change) -> None:
        if change.event != "escalated":
            logger.info("approval request %s timed out", request.id)
            return
        escalated = apply_change(copy.deepcopy(request), change, change_event(change))
        logger.info("approval request %s escalated to %s", request.id, escalated.escalate_to)
        if self.protocol is not None:
            to = change.details["added"] or list(escalated.escalate_to)
            await notify_approvers(self.protocol, escalated, self.base_url, recipients=to)

    async def sweep_overdue(self) -> Sweep:
        """Escalate or time out every pending request past its deadline.

        Safe on several instances at once: each request's deadline is acted on by
        exactly one of them (compare-and-set), and each is counted by that one.

        Returns:
            The ids this call escalated and timed out.
        """
        result = Sweep()
        store = self._store
        previous: list[str] | None = None
        while True:
            now = utcnow()
            page = await store.overdue(now, _SWEEP_PAGE)
            ids = [r.id for r in page]
            if not page or ids == previous:
                return result
            changes = [policy.on_deadline(r, now) for r in page]
            applied = await self.retry_policy.run(lambda: store.append_many(changes))  # noqa: B023
            for request, change, done in zip(page, changes, applied, strict=True):
                if done:
                    bucket = result.escalated if change.event == "escalated" else result.timed_out
                    bucket.append(request.id)
                    await self._after_deadline(request, change)
            if len(page) < _SWEEP_PAGE:
                return result
            previous = ids

    async def timeout_pending_approvals(self) -> int:
        """Act on every pending request past its deadline: escalate the ones whose
        policy says so (once), time out the others (see :meth:`sweep_overdue`).

        Returns:
            How many requests this call timed out.
        """
        result = await self.sweep_overdue()
        if result.timed_out or result.escalated:
            logger.info(
                "timed out %d, escalated %d approval requests",
                len(result.timed_out),
                len(result.escalated),
            )
        return len(result.timed_out)

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
                if policy.overdue(request, now):
                    if await self._deadline_passed(request, now):
                        continue  # re-read: timed out or escalated now
                    request = await self._load(approval_request_id)
                    if request.status is not _PENDING:  # decided meanwhile
                        return request.status is ApprovalStatus.APPROVED
                    # It changed under us (a vote): look again later rather than spin.
                    if left <= 0:
                        return False
                    await wait(min(left, _RECHECK_SECONDS))
                    continue
                if left <= 0:
                    return False
                if request.deadline_at is not None:
                    left = min(left, (request.deadline_at - now).total_seconds())
                await wait(max(0.0, min(left, _RECHECK_SECONDS)))
