"""The rules of the approval workflow: who may vote, what a vote does, what a deadline does.

Pure functions over a loaded request: each returns the :class:`~kaizen.governance._rows.Change`
a store applies only if the request is unchanged since it was read, or raises why
nothing may change. Both stores persist; neither decides. A new policy is a change
here.

- **Eligible approvers** are the request's approvers minus its requester and its
  excluded approvers. Each casts at most one vote, in person or through a delegate;
  a person casts at most one vote per request, whoever for.
- **Quorum with veto**: an approval counts toward the version of the metadata it is
  for (the request's own, or an edited one; versions compare as JSON values, so
  ``15`` is ``15.0``); ``quorum`` approvals of one version
  approve the request with that version. Any eligible rejection rejects it. An
  approval after which no version could still reach the quorum is refused.
- **Deadlines**: a pending request past its deadline escalates once, if its policy
  names approvers to escalate to (they join the approvers, with a fresh deadline),
  and otherwise times out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kaizen.governance._rows import Change
from kaizen.governance.audit import canonical
from kaizen.governance.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
    NotAuthorizedError,
    QuorumUnreachableError,
    SelfDecisionError,
)
from kaizen.governance.models import (
    ApprovalStatus,
    Delegation,
    ExternalAgentApprovalRequest,
    Vote,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Progress",
    "cast",
    "eligible",
    "metadata_diff",
    "on_deadline",
    "overdue",
    "progress",
    "needs_delegations",
]

#: Length of an escalated request's fresh deadline when its policy recorded none.
DEFAULT_TIMEOUT_SECONDS = 3600.0
_PENDING = ApprovalStatus.PENDING


def eligible(request: ExternalAgentApprovalRequest) -> list[str]:
    """The approvers who may vote on ``request``, in routing order."""
    barred = {request.requested_by, *request.excluded_approvers}
    return [a for a in request.approvers if a not in barred]


def overdue(request: ExternalAgentApprovalRequest, now: datetime) -> bool:
    """Whether ``request`` is pending and past its deadline at ``now``."""
    deadline = request.deadline_at
    return request.status is _PENDING and deadline is not None and deadline <= now


def needs_delegations(request: ExternalAgentApprovalRequest, voter: str) -> bool:
    """Whether deciding ``voter``'s vote needs their delegations (they vote for someone)."""
    if request.status is not _PENDING or voter in {v.approver_id for v in request.votes}:
        return False
    return voter not in eligible(request)


@dataclass(frozen=True)
class Progress:
    """How far a request is toward its quorum.

    Attributes:
        approvals: Approvals of the version closest to the quorum.
        quorum: Approvals needed.
        metadata: That version (None: the request's own metadata).
    """

    approvals: int
    quorum: int
    metadata: dict[str, Any] | None

    def __str__(self) -> str:
        return f"{self.approvals} of {self.quorum}"


def _version_key(metadata: dict[str, Any] | None) -> str | None:
    """What identifies a version of the metadata: its JSON value, keys sorted and whole
    floats as ints (``15`` is ``15.0``, as JSON and every client reading it see it)."""
    return None if metadata is None else canonical(_plain(metadata))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def progress(request: ExternalAgentApprovalRequest) -> Progress:
    """The approvals recorded for the most approved version (the latest on a tie)."""
    counts: dict[Any, tuple[int, dict[str, Any] | None]] = {}
    for vote in request.votes:
        if vote.decision == "approve":
            key = _version_key(vote.metadata)
            count = counts.get(key, (0, None))[0] + 1
            counts.pop(key, None)  # re-inserted last: the latest wins a tie
            counts[key] = (count, vote.metadata)
    best: tuple[int, dict[str, Any] | None] = (0, None)
    for count, metadata in counts.values():
        if count >= best[0]:
            best = (count, metadata)
    return Progress(best[0], request.quorum, best[1])


def _voting_for(
    request: ExternalAgentApprovalRequest,
    voter: str,
    delegations: Sequence[Delegation],
    on_behalf_of: str | None,
    now: datetime,
) -> str | None:
    """Whom ``voter``'s vote counts for (None: themselves); raises who may not vote."""
    rid = request.id
    if request.status is not _PENDING:
        raise AlreadyDecidedError(rid, request.status)
    cast_by = {v.approver_id: v for v in request.votes}
    if voter in cast_by:
        raise AlreadyVotedError(rid, voter, request.status)
    voters = eligible(request)
    if voter in request.excluded_approvers:
        raise NotAuthorizedError(rid, voter)
    counted = {v.counts_for: v for v in request.votes}
    if on_behalf_of is None and voter in voters:
        if voter in counted:
            raise AlreadyVotedError(
                rid, voter, request.status, f"{counted[voter].approver_id} voted for them"
            )
        return None
    stand_in = [
        d.approver_id
        for d in delegations
        if d.delegate_id == voter and d.active(now) and d.approver_id in voters
    ]
    if voter == request.requested_by and (stand_in or voter in request.approvers):
        raise SelfDecisionError(rid, voter)
    wanted = [on_behalf_of] if on_behalf_of is not None else stand_in
    open_ = [a for a in wanted if a in stand_in and a not in counted]
    if open_:
        return sorted(open_, key=voters.index)[0]
    if on_behalf_of is not None and on_behalf_of in counted and on_behalf_of in stand_in:
        raise AlreadyVotedError(rid, voter, request.status, f"a vote for {on_behalf_of} is in")
    if on_behalf_of is None and stand_in:
        raise AlreadyVotedError(
            rid, voter, request.status, f"everyone {voter} stands in for has voted"
        )
    raise NotAuthorizedError(rid, voter)


def cast(
    request: ExternalAgentApprovalRequest,
    voter: str,
    decision: str,
    *,
    now: datetime,
    comment: str | None = None,
    metadata: dict[str, Any] | None = None,
    delegations: Sequence[Delegation] = (),
    on_behalf_of: str | None = None,
) -> Change:
    """The change ``voter``'s vote makes: a recorded vote, an approval or a rejection.

    Args:
        request: The request as loaded (votes included), not overdue at ``now``.
        voter: Who votes.
        decision: ``approve`` or ``reject`` (whose ``comment`` is the reason).
        now: The vote's time.
        comment: The voter's comment.
        metadata: For an approval, the edited metadata it approves (equal to the
            request's own: as requested).
        delegations: The voter's delegations (see :func:`needs_delegations`).
        on_behalf_of: Vote for this delegator (default: for themselves if they are
            an approver, else for the first delegator whose vote is not in).

    Raises:
        AlreadyDecidedError: The request is no longer pending.
        AlreadyVotedError: The voter voted, or their vote was cast by a delegate.
        SelfDecisionError: The voter made the request.
        NotAuthorizedError: The voter is neither an eligible approver nor a delegate
            of one.
        QuorumUnreachableError: After this approval no version could reach the
            quorum (approvals split across versions).
    """
    if on_behalf_of == voter:
        on_behalf_of = None  # for oneself: what voting without it means
    behalf = _voting_for(request, voter, delegations, on_behalf_of, now)
    if decision == "reject" or _version_key(metadata) == _version_key(request.request_metadata):
        metadata = None
    vote = Vote(voter, decision, now, comment, behalf, metadata)
    used = None
    details: dict[str, Any] = {"quorum": request.quorum}
    if behalf is not None:
        used = next(d for d in delegations if d.approver_id == behalf and d.delegate_id == voter)
        details["on_behalf_of"] = behalf
        details["delegation"] = _delegation_json(used)  # the chain vouches for it too
    if metadata is not None:
        details["diff"] = metadata_diff(request.request_metadata, metadata)
    if decision == "reject":
        details["reason"] = comment
        fields = {"status": ApprovalStatus.REJECTED, "approved_at": now, "approved_by": voter}
        fields["rejection_reason"] = comment
        return _change(request, "rejected", voter, now, fields, details, vote, used)
    details["approvals"] = _approvals(request.votes, metadata) + 1
    if details["approvals"] >= request.quorum:
        fields = {"status": ApprovalStatus.APPROVED, "approved_at": now, "approved_by": voter}
        fields["approved_metadata"] = metadata
        return _change(request, "approved", voter, now, fields, details, vote, used)
    _check_reachable(request, vote)
    return _change(request, "voted", voter, now, {}, details, vote, used, announce=False)


def _approvals(votes: Sequence[Vote], metadata: dict[str, Any] | None) -> int:
    """How many of ``votes`` approve the version ``metadata``."""
    version = _version_key(metadata)
    return sum(1 for v in votes if v.decision == "approve" and _version_key(v.metadata) == version)


def _check_reachable(request: ExternalAgentApprovalRequest, vote: Vote) -> None:
    """Refuse an approval after which no version could reach the quorum any more.

    Raises:
        QuorumUnreachableError: The approvers still to vote are too few for any
            version, this one included (the voter should approve a version
            already approved, or reject).
    """
    votes = [*request.votes, vote]
    voted = {v.counts_for for v in votes}
    left = sum(1 for a in eligible(request) if a not in voted)
    best = max(_approvals(votes, v.metadata) for v in votes if v.decision == "approve")
    if best + left < request.quorum:
        raise QuorumUnreachableError(request.id, vote.approver_id, request.quorum)


def _delegation_json(used: Delegation) -> dict[str, Any]:
    return {
        "created_at": used.created_at.isoformat(),
        "created_by": used.created_by,
        "until": used.until.isoformat() if used.until is not None else None,
    }


def _change(
    request: ExternalAgentApprovalRequest,
    event: str,
    actor: str,
    at: datetime,
    fields: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    vote: Vote | None = None,
    delegation: Delegation | None = None,
    *,
    announce: bool = True,
) -> Change:
    """A change of ``request`` computed from its state as loaded."""
    return Change(
        request.id,
        request.audit_seq,
        request.audit_head,
        event,
        actor,
        at,
        fields or {},
        details or {},
        vote,
        delegation,
        announce,
    )


def on_deadline(request: ExternalAgentApprovalRequest, now: datetime) -> Change:
    """What the passing of ``request``'s deadline does: escalate it once, else time it out.

    Args:
        request: A request for which :func:`overdue` holds at ``now``.
    """
    deadline = request.deadline_at.isoformat() if request.deadline_at else None
    if request.escalate_to and request.escalations == 0:
        added = [a for a in request.escalate_to if a not in request.approvers]
        seconds = request.timeout_seconds or DEFAULT_TIMEOUT_SECONDS
        fields = {
            "approvers": [*request.approvers, *added],
            "deadline_at": now + timedelta(seconds=seconds),
            "escalations": request.escalations + 1,
        }
        details = {"added": added, "missed_deadline": deadline}
        return _change(request, "escalated", "system", now, fields, details)  # announced
    fields = {"status": ApprovalStatus.TIMEOUT, "approved_at": now}
    return _change(request, "timed_out", "system", now, fields, {"deadline_at": deadline})


def metadata_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What an edit changed, key by key: ``changed`` (``[old, new]``), ``added``, ``removed``."""
    changed = {
        k: [before[k], after[k]]
        for k in before
        if k in after and canonical(_plain(before[k])) != canonical(_plain(after[k]))
    }
    added = {k: after[k] for k in after if k not in before}
    removed = sorted(k for k in before if k not in after)
    return {"changed": changed, "added": added, "removed": removed}
