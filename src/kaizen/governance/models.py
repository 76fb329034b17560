"""Value types of the approval workflow: statuses, levels, requirements, requests, audit."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import check_json, check_text, describe

__all__ = [
    "ApprovalLevel",
    "ApprovalRequirement",
    "ApprovalStatus",
    "AuditEvent",
    "AuditProblem",
    "AuditReport",
    "Delegation",
    "ExternalAgentApprovalRequest",
    "MAX_QUORUM",
    "MAX_TIMEOUT_SECONDS",
    "Vote",
    "VoteDecision",
    "as_status",
    "check_comment",
    "check_id",
    "check_quorum",
    "check_reason",
]

#: The longest approval timeout: a century.
MAX_TIMEOUT_SECONDS = 100 * 366 * 86_400
#: The largest quorum a requirement may ask for.
MAX_QUORUM = 100


class ApprovalStatus(enum.Enum):
    """Where an approval request stands. Only PENDING requests can still be decided."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMEOUT = "timeout"


class ApprovalLevel(enum.Enum):
    """Who approves: the requester's team lead(s), org admins, the owner, or a custom list."""

    TEAM_LEAD = "team_lead"
    ADMIN = "admin"
    OWNER = "owner"
    CUSTOM = "custom"


@dataclass
class ApprovalRequirement:
    """When an external agent's invocation needs approval, and from whom.

    Any matching trigger requires approval (OR logic).

    Args:
        approval_level: Who approves (see :class:`ApprovalLevel`).
        require_for_environments: Environments (``metadata["environment"]``) that need approval.
        require_for_cost_above: Cost (``metadata["cost"]``) above which approval is needed.
        require_for_data_classifications: Classifications (any overlap with
            ``metadata["data_classifications"]``) that need approval.
        require_for_operations: Operations (``metadata["operation"]``) that need approval.
        custom_approvers: The approvers when ``approval_level`` is CUSTOM.
        approval_timeout_seconds: Seconds a request stays decidable; each request
            stores its own deadline computed from this.
        approval_reason: Human-readable reason shown to approvers.
        excluded_approvers: Users who may never decide this agent's requests
            (e.g. the agent's own developers), whatever the level routes to:
            separation of duties made stricter. The requester is always excluded
            from deciding their own request; there is no way to loosen that.
        quorum: How many distinct approvals a request needs (any rejection by
            an eligible approver rejects it: a veto).
        escalate_to: Who a request goes to when nobody decided it in time: a
            list of approver ids or an :class:`ApprovalLevel`. The escalated
            request gets a fresh deadline of ``approval_timeout_seconds``; its
            first approvers may still vote. None: it times out.

    Raises:
        ValidationError: A non-positive timeout, an empty approver id, a quorum
            that is not a whole number from 1 to :data:`MAX_QUORUM`, triggers that
            are not lists of names, a cost threshold that is not a finite number.
    """

    approval_level: ApprovalLevel
    require_for_environments: list[str] = field(default_factory=list)
    require_for_cost_above: float | None = None
    require_for_data_classifications: list[str] = field(default_factory=list)
    require_for_operations: list[str] = field(default_factory=list)
    custom_approvers: list[str] = field(default_factory=list)
    approval_timeout_seconds: float = 3600
    approval_reason: str | None = None
    excluded_approvers: list[str] = field(default_factory=list)
    quorum: int = 1
    escalate_to: list[str] | ApprovalLevel | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.approval_level, ApprovalLevel):
            raise ValidationError(
                f"approval_level must be an ApprovalLevel, got {describe(self.approval_level)}"
            )
        timeout = self.approval_timeout_seconds
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValidationError(
                f"approval_timeout_seconds must be a positive number, got {describe(timeout)}"
            )
        if not math.isfinite(timeout) or timeout > MAX_TIMEOUT_SECONDS:
            raise ValidationError(
                f"approval_timeout_seconds must be at most {MAX_TIMEOUT_SECONDS} (a century)"
            )
        for name in (
            "require_for_environments",
            "require_for_data_classifications",
            "require_for_operations",
        ):
            values = getattr(self, name)
            if not isinstance(values, list):
                raise ValidationError(f"{name} must be a list of names, got {describe(values)}")
            for value in values:
                check_id(f"{name} entry", value)
        cost = self.require_for_cost_above
        if cost is not None and (
            isinstance(cost, bool) or not isinstance(cost, int | float) or not math.isfinite(cost)
        ):
            raise ValidationError(
                f"require_for_cost_above must be a finite number or None, got {describe(cost)}"
            )
        if not isinstance(self.custom_approvers, list):
            raise ValidationError("custom_approvers must be a list of approver ids")
        for approver in self.custom_approvers:
            check_id("custom approver id", approver)
        if not isinstance(self.excluded_approvers, list):
            raise ValidationError("excluded_approvers must be a list of user ids")
        for user in self.excluded_approvers:
            check_id("excluded approver id", user)
        check_reason(self.approval_reason, "approval_reason")
        check_quorum(self.quorum)
        escalate = self.escalate_to
        if isinstance(escalate, list):
            if not escalate:
                raise ValidationError("escalate_to must not be an empty list (use None)")
            for approver in escalate:
                check_id("escalate_to approver id", approver)
        elif escalate is not None and not isinstance(escalate, ApprovalLevel):
            raise ValidationError(
                "escalate_to must be a list of approver ids, an ApprovalLevel or None, "
                f"got {describe(escalate)}"
            )

    def triggered_by(self, metadata: dict[str, Any]) -> bool:
        """Whether ``metadata`` (cost, environment, data_classifications, operation) matches."""
        cost = metadata.get("cost")
        if self.require_for_cost_above is not None and _number(cost) > self.require_for_cost_above:
            return True
        if metadata.get("environment") in self.require_for_environments:
            return True
        classes = metadata.get("data_classifications") or []
        if isinstance(classes, str):
            classes = [classes]
        if not isinstance(classes, list | tuple):
            classes = []
        if set(self.require_for_data_classifications) & {c for c in classes if isinstance(c, str)}:
            return True
        return metadata.get("operation") in self.require_for_operations


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


VoteDecision = str
#: The two decisions a vote can carry.
VOTE_DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class Vote:
    """One approver's recorded vote on a request.

    Attributes:
        approver_id: Who voted (the delegate, for a vote on someone's behalf).
        decision: ``approve`` or ``reject``.
        at: When it was recorded (aware UTC).
        comment: The voter's comment (a rejection's reason).
        on_behalf_of: The approver a delegate voted for, or None.
        metadata: The version of the request's metadata an approval is for
            (None: as requested); approvals count toward the quorum per version.
    """

    approver_id: str
    decision: VoteDecision
    at: datetime
    comment: str | None = None
    on_behalf_of: str | None = None
    metadata: dict[str, Any] | None = None

    @classmethod
    def _restore(cls, fields: dict[str, Any]) -> Vote:
        """Rebuild a vote from a stored row's values (every field, in field order) without
        the frozen ``__init__``'s per-field ``object.__setattr__``: votes in storage were
        validated when recorded."""
        vote = cls.__new__(cls)
        vote.__dict__.update(fields)
        return vote

    @property
    def counts_for(self) -> str:
        """The approver whose vote this is: the delegator, or the voter."""
        return self.on_behalf_of or self.approver_id


@dataclass(frozen=True)
class Delegation:
    """``delegate_id`` may vote for ``approver_id`` until ``until`` (None: until revoked).

    Attributes:
        approver_id: Who delegates.
        delegate_id: Who stands in.
        until: End of the delegation (aware UTC), or None.
        created_at: When it was made.
        created_by: Who made it.
    """

    approver_id: str
    delegate_id: str
    until: datetime | None
    created_at: datetime
    created_by: str

    def active(self, now: datetime) -> bool:
        """Whether the delegation holds at ``now``."""
        return self.until is None or self.until > now


@dataclass
class ExternalAgentApprovalRequest:
    """One approval request, pending or decided.

    ``approved_at``/``approved_by`` record the decision (approval or rejection);
    a timeout sets ``approved_at`` only. ``deadline_at`` is when the request times
    out (or escalates). The policy in force when it was created is frozen into it:
    ``quorum``, ``escalate_to`` (the approvers it escalates to, resolved),
    ``timeout_seconds`` (each deadline's length) and ``excluded_approvers``.
    ``escalations`` counts escalations done; ``votes`` are the recorded votes,
    oldest first; ``approved_metadata`` is the edited version of
    ``request_metadata`` an approval was given for (None: approved as requested).
    """

    id: str
    external_agent_id: str
    requested_by: str
    approvers: list[str]
    status: ApprovalStatus
    approval_reason: str | None
    request_metadata: dict[str, Any]
    created_at: datetime
    approved_at: datetime | None = None
    approved_by: str | None = None
    rejection_reason: str | None = None
    deadline_at: datetime | None = None
    quorum: int = 1
    escalate_to: list[str] = field(default_factory=list)
    escalations: int = 0
    timeout_seconds: float | None = None
    excluded_approvers: list[str] = field(default_factory=list)
    approved_metadata: dict[str, Any] | None = None
    votes: list[Vote] = field(default_factory=list)
    #: Seq and hash of the latest audit event as loaded (what a change is conditional on).
    audit_seq: int = field(default=0, repr=False, compare=False)
    audit_head: str = field(default="", repr=False, compare=False)

    def validate(self) -> None:
        """Check the request can be stored, before anything is written.

        Raises:
            ValidationError: Empty ids, an empty approver list, naive datetimes,
                or metadata that is not a JSON object (NaN and Infinity included).
        """
        check_id("request id", self.id)
        check_id("external_agent_id", self.external_agent_id)
        check_id("requested_by", self.requested_by)
        if not isinstance(self.approvers, list) or not self.approvers:
            raise ValidationError(f"request {self.id!r} needs a non-empty list of approvers")
        for approver in self.approvers:
            check_id("approver id", approver)
        if not isinstance(self.status, ApprovalStatus):
            raise ValidationError(f"status must be an ApprovalStatus, got {describe(self.status)}")
        check_reason(self.approval_reason, "approval_reason")
        check_reason(self.rejection_reason, "rejection_reason")
        if self.approved_by is not None:
            check_id("approved_by", self.approved_by)
        if not isinstance(self.request_metadata, dict):
            raise ValidationError("request_metadata must be a dict")
        check_json(self.request_metadata, "request_metadata")  # the rules of every column
        if self.approved_metadata is not None:
            if not isinstance(self.approved_metadata, dict):
                raise ValidationError("approved_metadata must be a dict or None")
            check_json(self.approved_metadata, "approved_metadata")
        check_quorum(self.quorum)
        for name in ("escalate_to", "excluded_approvers"):
            ids = getattr(self, name)
            if not isinstance(ids, list):
                raise ValidationError(f"{name} must be a list of user ids")
            for user in ids:
                check_id(f"{name} id", user)
        for name in ("created_at", "approved_at", "deadline_at"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
                raise ValidationError(f"{name} must be a timezone-aware datetime")


def as_status(value: ApprovalStatus | str) -> ApprovalStatus:
    """``value`` as an :class:`ApprovalStatus` (its string value is accepted too).

    Raises:
        ValidationError: Not a status.
    """
    try:
        return ApprovalStatus(value)
    except (ValueError, TypeError):
        raise ValidationError(f"unknown approval status {describe(value)}") from None


def check_quorum(value: Any) -> int:
    """Return ``value`` if it is a quorum: a whole number from 1 to :data:`MAX_QUORUM`.

    Raises:
        ValidationError: Otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_QUORUM:
        raise ValidationError(
            f"quorum must be a whole number from 1 to {MAX_QUORUM}, got {describe(value)}"
        )
    return value


def check_id(what: str, value: Any) -> str:
    """Return ``value`` if it is a usable id (a non-blank str of at most 255 characters,
    without surrounding whitespace).

    Raises:
        ValidationError: Otherwise.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be a non-empty string, got {describe(value)}")
    if value != value.strip():
        # MySQL's collations compare 'a ' equal to 'a': such ids would alias others.
        raise ValidationError(f"{what} must not start or end with whitespace")
    if len(value) > 255:
        raise ValidationError(f"{what} is longer than 255 characters")
    return check_text(value, what)


#: The longest rejection reason, in characters (every surface checks the same).
MAX_REASON = 4000


def check_rejection_reason(value: Any) -> str:
    """Return ``value`` if it can be a rejection's reason: non-blank text of at most
    :data:`MAX_REASON` characters.

    Raises:
        ValidationError: Otherwise.
    """
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON:
        raise ValidationError(
            f"a rejection needs a reason: a non-empty string of at most {MAX_REASON} characters"
        )
    return check_text(value, "reason")


def check_comment(value: Any) -> str | None:
    """Return ``value`` if it can be a vote's comment: None, or text of at most
    :data:`MAX_REASON` characters.

    Raises:
        ValidationError: Otherwise.
    """
    if value is not None and isinstance(value, str) and len(value) > MAX_REASON:
        raise ValidationError(f"a comment is at most {MAX_REASON} characters")
    return check_reason(value, "comment")


def check_reason(value: Any, what: str = "reason") -> str | None:
    """Return ``value`` if it is None or text every database stores.

    Raises:
        ValidationError: Otherwise.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {type(value).__name__}")
    return check_text(value, what)


@dataclass(frozen=True)
class AuditEvent:
    """One entry of a request's append-only, hash-chained audit trail.

    Attributes:
        request_id: The request.
        seq: Position in the request's chain, from 0 (``requested``).
        event: ``requested``, ``voted``, ``approved``, ``rejected``, ``escalated``,
            ``timed_out``, ``updated`` or ``deleted``.
        actor: Who caused it (the requester, the approver, or ``system``).
        occurred_at: When (aware UTC).
        details: Event data (the request's content, a rejection reason...).
        prev_hash: Hash of the previous event (64 zeros for the first).
        hash: sha256 over the canonical JSON of this event and ``prev_hash``.
    """

    request_id: str
    seq: int
    event: str
    actor: str
    occurred_at: datetime
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditProblem:
    """One inconsistency ``verify_audit()`` found.

    Attributes:
        request_id: The request.
        seq: The event concerned, or None when it is about the request row.
        message: What is wrong, e.g. ``row differs from its audit trail: approved_by``.
        fields: The request fields whose stored value differs from the state
            its audit trail seals (empty for problems of the chain itself).
    """

    request_id: str
    seq: int | None
    message: str
    fields: tuple[str, ...] = ()


@dataclass
class AuditReport:
    """Result of verifying audit chains.

    Attributes:
        ok: True when no problem was found.
        requests: How many request chains were checked.
        events: How many events were checked.
        problems: What was found wrong: edited, removed or inserted events, and
            request rows that differ from what their trail seals.
    """

    requests: int = 0
    events: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems
