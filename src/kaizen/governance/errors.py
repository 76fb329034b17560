"""Errors of the governance package, all inside DataFlow's single exception tree.

Every error here derives from :class:`dataflow.errors.DataFlowError` (so one
``except DataFlowError`` catches everything the stack raises) and from
:class:`ValueError`, which is what callers of the original approval manager
expect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dataflow.errors import ConfigurationError, DataFlowError, NotFoundError

if TYPE_CHECKING:
    from kaizen.governance.models import ApprovalStatus

__all__ = [
    "AlreadyDecidedError",
    "AlreadyVotedError",
    "ApprovalConfigurationError",
    "ApprovalNotFoundError",
    "GovernanceError",
    "NotAuthorizedError",
    "QuorumUnreachableError",
    "SelfDecisionError",
]


class GovernanceError(DataFlowError, ValueError):
    """Root of the governance errors."""


class ApprovalNotFoundError(GovernanceError, NotFoundError):
    """No approval request has the given id.

    Attributes:
        request_id: The id that was looked up.
    """

    def __init__(self, request_id: str) -> None:
        super().__init__(f"approval request {request_id!r} not found")
        self.request_id = request_id


class AlreadyDecidedError(GovernanceError):
    """The request is no longer pending: another decision (or the timeout) won.

    Attributes:
        request_id: The request.
        status: Its final status.
    """

    def __init__(self, request_id: str, status: ApprovalStatus) -> None:
        super().__init__(f"approval request {request_id!r} already decided: {status.value}")
        self.request_id = request_id
        self.status = status


class AlreadyVotedError(AlreadyDecidedError):
    """This approver's vote on the request is recorded already (cast by them or,
    for a delegator, by their delegate); a vote is never changed or cast twice.

    Attributes:
        request_id: The request.
        approver_id: Who tried to vote.
        status: The request's status now (PENDING while the quorum is not met).
    """

    def __init__(
        self, request_id: str, approver_id: str, status: ApprovalStatus, detail: str = ""
    ) -> None:
        GovernanceError.__init__(
            self,
            f"user {approver_id!r} already voted on approval request {request_id!r}"
            + (f" ({detail})" if detail else ""),
        )
        self.request_id = request_id
        self.approver_id = approver_id
        self.status = status


class NotAuthorizedError(GovernanceError):
    """The user is not one of the request's approvers.

    Attributes:
        request_id: The request.
        approver_id: The user who tried to decide it.
    """

    def __init__(self, request_id: str, approver_id: str) -> None:
        super().__init__(
            f"user {approver_id!r} is not authorized to decide approval request {request_id!r}"
        )
        self.request_id = request_id
        self.approver_id = approver_id


class SelfDecisionError(NotAuthorizedError):
    """The user made the request: nobody approves or rejects their own request."""

    def __init__(self, request_id: str, approver_id: str) -> None:
        GovernanceError.__init__(
            self,
            f"user {approver_id!r} made approval request {request_id!r} and may not decide it "
            "(separation of duties)",
        )
        self.request_id = request_id
        self.approver_id = approver_id


class QuorumUnreachableError(GovernanceError):
    """An approval would leave no version of the metadata able to reach the quorum
    (approvals split across versions with too few approvers left to vote): approve a
    version already approved, or reject.

    Attributes:
        request_id: The request.
        approver_id: Who tried to vote.
        quorum: Approvals the request needs.
    """

    def __init__(self, request_id: str, approver_id: str, quorum: int) -> None:
        super().__init__(
            f"approving this version of approval request {request_id!r} would leave no "
            f"version able to reach its quorum of {quorum}: approve the version already "
            "approved, or reject"
        )
        self.request_id = request_id
        self.approver_id = approver_id
        self.quorum = quorum


class ApprovalConfigurationError(GovernanceError, ConfigurationError):
    """The manager lacks configuration it needs (a requirement, approvers)."""
