"""The policy's rules and the stored policy format, without a database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataflow import ValidationError
from dataflow.values import utcnow
from kaizen.governance import (
    AlreadyVotedError,
    ApprovalLevel,
    ApprovalRequirement,
    Delegation,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    QuorumUnreachableError,
    Vote,
    policy,
)
from kaizen.governance.policies import requirement_from_json, requirement_to_json

MakeRequest = Callable[..., ExternalAgentApprovalRequest]


def _delegation(approver: str, delegate: str) -> Delegation:
    return Delegation(approver, delegate, None, utcnow(), approver)


def test_a_delegate_whose_approvers_all_voted_has_no_vote_left(make_request: MakeRequest) -> None:
    request = make_request(approvers=["bo", "cy"], quorum=2)
    request.votes = [Vote("bo", "approve", utcnow())]
    stand_in = [_delegation("bo", "dee")]
    assert policy.needs_delegations(request, "dee")
    with pytest.raises(AlreadyVotedError, match="everyone dee stands in for has voted"):
        policy.cast(request, "dee", "approve", now=utcnow(), delegations=stand_in)
    with pytest.raises(AlreadyVotedError, match="a vote for bo is in"):
        policy.cast(
            request, "dee", "approve", now=utcnow(), delegations=stand_in, on_behalf_of="bo"
        )
    # An approver needs no delegations to vote for themselves (nor when their vote is in).
    assert not policy.needs_delegations(request, "bo")
    request.votes = [Vote("dee", "approve", utcnow(), on_behalf_of="cy")]
    assert not policy.needs_delegations(request, "cy")
    with pytest.raises(AlreadyVotedError, match="dee voted for them"):
        policy.cast(request, "cy", "approve", now=utcnow())


def test_a_rejection_carries_no_edited_version(make_request: MakeRequest) -> None:
    request = make_request(approvers=["bo"])
    change = policy.cast(request, "bo", "reject", now=utcnow(), comment="no", metadata={"x": 1})
    assert change.vote is not None and change.vote.metadata is None
    assert "diff" not in change.details and change.fields["rejection_reason"] == "no"


@pytest.mark.parametrize(
    "fields",
    [
        {"approved_metadata": ["x"]},
        {"approved_metadata": {"x": float("inf")}},
        {"escalate_to": "boss"},
        {"excluded_approvers": [""]},
        {"quorum": 0},
    ],
)
def test_requests_with_a_bad_policy_are_refused(
    make_request: MakeRequest, fields: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        make_request(**fields).validate()


def test_requirements_round_trip_as_stored_policies() -> None:
    for requirement in (
        ApprovalRequirement(ApprovalLevel.TEAM_LEAD, quorum=1, escalate_to=ApprovalLevel.ADMIN),
        ApprovalRequirement(
            ApprovalLevel.CUSTOM,
            custom_approvers=["a", "b"],
            quorum=2,
            escalate_to=["c"],
            require_for_cost_above=5.5,
            excluded_approvers=["d"],
            approval_reason="why",
        ),
    ):
        assert requirement_from_json(requirement_to_json(requirement)) == requirement


@pytest.mark.parametrize(
    "data",
    [
        ["custom"],
        {"approval_level": "emperor"},
        {"approval_level": "custom", "escalate_to": "emperor"},
        {"approval_level": "custom", "quorum": "two"},
    ],
)
def test_a_stored_policy_this_version_cannot_read_is_a_validation_error(data: Any) -> None:
    with pytest.raises(ValidationError):
        requirement_from_json(data)


def test_bad_arguments_to_the_policy_shortcuts() -> None:
    manager = ExternalAgentApprovalManager()
    with pytest.raises(ValidationError, match="list of approver ids"):
        manager.set_approvers("a", "lead")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        manager.determine_if_approval_required("a", ["cost"])  # type: ignore[arg-type]


def test_an_approval_that_would_leave_the_quorum_unreachable_is_refused(
    make_request: MakeRequest,
) -> None:
    request = make_request(approvers=["ana", "bo"], quorum=2)
    request.votes = [Vote("ana", "approve", utcnow(), metadata={"cost": 4})]
    with pytest.raises(QuorumUnreachableError, match="quorum of 2"):
        policy.cast(request, "bo", "approve", now=utcnow())  # as requested: a dead split
    decided = policy.cast(request, "bo", "approve", now=utcnow(), metadata={"cost": 4.0})
    assert decided.event == "approved"
    assert policy.cast(request, "bo", "reject", now=utcnow(), comment="no").event == "rejected"
    # With a third approver left to vote, a split is still reachable.
    request = make_request(approvers=["ana", "bo", "cy"], quorum=2)
    request.votes = [Vote("ana", "approve", utcnow(), metadata={"cost": 4})]
    assert policy.cast(request, "bo", "approve", now=utcnow()).event == "voted"


def test_voting_on_behalf_of_oneself_is_voting(make_request: MakeRequest) -> None:
    request = make_request(approvers=["ana"])
    change = policy.cast(request, "ana", "approve", now=utcnow(), on_behalf_of="ana")
    assert change.vote is not None and change.vote.on_behalf_of is None


def test_only_status_changes_and_escalations_are_announced(make_request: MakeRequest) -> None:
    request = make_request(approvers=["ana", "bo"], quorum=2)
    assert not policy.cast(request, "ana", "approve", now=utcnow()).announce
    assert policy.cast(request, "ana", "reject", now=utcnow(), comment="x").announce
    request.escalate_to = ["boss"]
    assert policy.on_deadline(request, utcnow()).announce


@pytest.mark.parametrize(
    "fields",
    [
        {"require_for_environments": "prod"},
        {"require_for_operations": [7]},
        {"require_for_data_classifications": None},
        {"require_for_cost_above": "x"},
        {"require_for_cost_above": float("nan")},
        {"require_for_cost_above": True},
    ],
)
def test_bad_triggers_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["a"], **fields)
