"""The manager's claims on approvals (rules in :mod:`kaizen.governance.claims`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dataflow.errors import ConcurrencyError
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance import claims
from kaizen.governance._store import ApprovalStore
from kaizen.governance.models import ExternalAgentApprovalRequest, check_id

__all__ = ["Claims"]

_ATTEMPTS = 50


class Claims:
    """Claim an approval before acting on it, so it is acted on once."""

    _store: ApprovalStore
    retry_policy: RetryPolicy
    _load: Callable[[str], Awaitable[ExternalAgentApprovalRequest]]  # the manager's

    async def claim_approval(self, approval_request_id: str, claimant: str) -> bool:
        """Claim an approved request for ``claimant``, who then carries out what it approved.

        Of any number of claimants (processes, instances) exactly one gets True;
        claiming again as the holder is True too (a retry whose answer was lost).
        The claim is an audit event (``claimed``) in the request's trail.

        Args:
            approval_request_id: The approved request.
            claimant: Who acts on it (unique per attempt, e.g. a worker's run id).

        Returns:
            True if ``claimant`` holds the claim now; False if someone else does.

        Raises:
            ApprovalNotFoundError: Unknown id.
            ValidationError: Bad ids, or the request is not approved.
        """
        return await self._claim(approval_request_id, claimant, release=False)

    async def release_claim(self, approval_request_id: str, claimant: str) -> bool:
        """Give ``claimant``'s claim back (it did not act), so another may claim it.

        Returns:
            True if ``claimant`` held the claim (now released); False otherwise.

        Raises:
            ApprovalNotFoundError: Unknown id.
            ValidationError: Bad ids.
        """
        return await self._claim(approval_request_id, claimant, release=True)

    async def _claim(self, request_id: str, claimant: str, *, release: bool) -> bool:
        check_id("approval request id", request_id)
        check_id("claimant", claimant)
        store = self._store
        for _ in range(_ATTEMPTS):
            request = await self._load(request_id)  # first: its events are at least as new
            held = claims.holder(await store.events(request_id))
            if release and held != claimant:
                return False
            if not release and held is not None:
                return held == claimant
            decide = claims.release if release else claims.claim
            change = decide(request, claimant, utcnow())
            if await self.retry_policy.run(lambda: store.append(change)):  # noqa: B023
                return True
        raise ConcurrencyError(f"approval request {request_id!r} kept changing while claiming it")
