"""Separation of duties and the one listing query, on every database and in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gov_helpers import custom

from dataflow import DataFlow, ValidationError
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalStatus,
    Delegation,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    NotAuthorizedError,
    SelfDecisionError,
    policy,
)


async def test_the_requester_never_decides_their_own_request(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    # Routing put the requester among the approvers (e.g. a team lead asking).
    any_manager.add_requirement("agent-self", custom("lead-456", "user-123"))
    request_id = await any_manager.request_approval("agent-self", "user-123", {"cost": 1})
    before = await any_manager.get_audit_trail(request_id)
    with pytest.raises(SelfDecisionError, match="separation of duties") as caught:
        await any_manager.approve_request(request_id, "user-123")
    assert isinstance(caught.value, NotAuthorizedError)
    with pytest.raises(SelfDecisionError):
        await any_manager.reject_request(request_id, "user-123", "no")
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status is ApprovalStatus.PENDING
    assert request.approved_by is None
    assert await any_manager.get_audit_trail(request_id) == before
    # Another approver still can.
    await any_manager.approve_request(request_id, "lead-456")
    request = await any_manager.get_request(request_id)
    assert request is not None and request.approved_by == "lead-456"


async def test_the_policy_refuses_a_self_decision_before_the_store_sees_it(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    any_manager.add_requirement("agent-self", custom("user-123", "lead-456"))
    request_id = await any_manager.request_approval("agent-self", "user-123", {})
    request = await any_manager.get_request(request_id)
    assert request is not None
    for decision in ("approve", "reject"):
        with pytest.raises(SelfDecisionError):
            policy.cast(request, "user-123", decision, now=utcnow(), comment="x")
    # Nor as a delegate of another approver.
    stand_in = Delegation("lead-456", "user-123", None, utcnow(), "lead-456")
    with pytest.raises(SelfDecisionError):
        policy.cast(request, "user-123", "approve", now=utcnow(), delegations=[stand_in])
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status is ApprovalStatus.PENDING


async def test_one_listing_query_combines_every_filter(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    m = any_manager
    m.add_requirement("agent-2", custom("lead-789", "ops-1"))
    a = await m.request_approval("agent-1", "alice", {})
    b = await m.request_approval("agent-2", "alice", {})
    c = await m.request_approval("agent-1", "bob", {})
    d = await m.request_approval("agent-2", "bob", {})
    await m.approve_request(c, "lead-456")
    await m.reject_request(d, "ops-1", "no")

    async def ids(**filters: object) -> list[str]:
        return [r.id for r in await m.list_requests(**filters)]  # type: ignore[arg-type]

    assert await ids() == [d, c, b, a]  # newest first
    assert await ids(status=ApprovalStatus.PENDING) == [b, a]
    assert await ids(agent="agent-1") == [c, a]
    assert await ids(agent="agent-1", status=ApprovalStatus.PENDING) == [a]
    assert await ids(approver="lead-789") == [d, c, b, a]
    assert await ids(approver="ops-1", status=ApprovalStatus.PENDING) == [b]
    assert await ids(requested_by="bob") == [d, c]
    assert await ids(decided_by="ops-1") == [d]
    assert await ids(decided_by="ops-1", approver="lead-789") == [d]
    assert await ids(decided_by="lead-456", approver="ops-1") == []
    assert await ids(involving="alice") == [b, a]
    assert await ids(involving="ops-1") == [d, b]
    assert await ids(involving="ops-1", status=ApprovalStatus.REJECTED) == [d]
    assert await ids(involving="nobody") == []
    # The filter applies before the page: limit never hides matching rows.
    assert await ids(agent="agent-1", limit=1) == [c]
    assert await ids(agent="agent-1", limit=1, offset=1) == [a]
    assert await ids(involving="alice", limit=5, offset=2) == []
    assert await ids(involving="ops-1", limit=1) == [d]
    assert await ids(involving="ops-1", limit=1, offset=1) == [b]
    assert await ids(involving="lead-456", approver="lead-789", limit=2, offset=1) == [a]
    assert await ids(involving="alice", agent="agent-2") == [b]


@pytest.mark.parametrize(
    "filters",
    [
        {"approver": ""},
        {"agent": " "},
        {"requested_by": 3},
        {"involving": "x" * 256},
        {"decided_by": ""},
        {"status": "maybe"},
    ],
)
async def test_listing_refuses_bad_filters(
    any_manager: ExternalAgentApprovalManager, filters: dict[str, object]
) -> None:
    with pytest.raises(ValidationError):
        await any_manager.list_requests(**filters)  # type: ignore[arg-type]


async def test_excluded_approvers_make_separation_of_duties_stricter(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    from kaizen.governance import ApprovalConfigurationError, ApprovalLevel, ApprovalRequirement

    requirement = ApprovalRequirement(
        approval_level=ApprovalLevel.CUSTOM,
        custom_approvers=["lead-456", "dev-1"],
        excluded_approvers=["dev-1"],
    )
    any_manager.add_requirement("agent-x", requirement)
    request_id = await any_manager.request_approval("agent-x", "user-123", {})
    request = await any_manager.get_request(request_id)
    assert request is not None and request.approvers == ["lead-456"]  # frozen into the request
    with pytest.raises(NotAuthorizedError):
        await any_manager.approve_request(request_id, "dev-1")
    only_excluded = ApprovalRequirement(
        approval_level=ApprovalLevel.CUSTOM,
        custom_approvers=["dev-1"],
        excluded_approvers=["dev-1"],
    )
    any_manager.add_requirement("agent-y", only_excluded)
    with pytest.raises(ApprovalConfigurationError, match="excluded_approvers"):
        await any_manager.request_approval("agent-y", "user-123", {})
    for bad in ("dev-1", [""], [3]):
        with pytest.raises(ValidationError, match="excluded"):
            ApprovalRequirement(
                approval_level=ApprovalLevel.CUSTOM,
                custom_approvers=["a"],
                excluded_approvers=bad,  # type: ignore[arg-type]
            )


async def test_waiting_never_spins_when_the_deadline_write_keeps_losing(
    tmp_path: Path,
) -> None:
    async with DataFlow(f"sqlite:///{tmp_path / 'w.db'}") as db:
        storage = ExternalAgentApprovalStorage(db)
        manager = ExternalAgentApprovalManager(storage_backend=storage)
        manager.add_requirement("agent-1", custom("lead-456", timeout=0.01))
        request_id = await manager.request_approval("agent-1", "user-123", {})
        attempts = 0

        async def loses(change: Any) -> bool:  # as if another instance changed it each time
            nonlocal attempts
            attempts += 1
            return False

        storage.append = loses  # type: ignore[method-assign]
        assert await manager.wait_for_approval(request_id, timeout=0.3) is False
        # Tried, then waited with the poll backoff (50, 100, 200 ms...) instead of spinning.
        assert 1 <= attempts <= 6


async def test_a_request_only_its_requester_could_decide_is_refused(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    from kaizen.governance import ApprovalConfigurationError

    any_manager.add_requirement("agent-self", custom("user-123"))
    with pytest.raises(ApprovalConfigurationError, match=r"only approver .* is the requester"):
        await any_manager.request_approval("agent-self", "user-123", {})
    assert await any_manager.list_requests(requested_by="user-123") == []


@pytest.mark.parametrize("user", ["lead-456 ", " lead-456", "lead-456\t", "\nlead-456"])
async def test_ids_with_surrounding_whitespace_are_refused(
    any_manager: ExternalAgentApprovalManager, user: str
) -> None:
    # MySQL compares 'a ' equal to 'a': such an id would read or decide as another user.
    with pytest.raises(ValidationError, match="whitespace"):
        any_manager.set_approvers("agent-ws", [user])
    with pytest.raises(ValidationError, match="whitespace"):
        await any_manager.request_approval("agent-1", user, {})
    request_id = await any_manager.request_approval("agent-1", "user-123", {})
    with pytest.raises(ValidationError, match="whitespace"):
        await any_manager.approve_request(request_id, user)
    with pytest.raises(ValidationError, match="whitespace"):
        await any_manager.list_requests(involving=user)


async def test_the_manager_takes_any_approval_store() -> None:
    from kaizen.governance import ApprovalStore, InMemoryApprovalStore

    store: ApprovalStore = InMemoryApprovalStore()
    first = ExternalAgentApprovalManager(storage_backend=store)
    second = ExternalAgentApprovalManager(storage_backend=store)  # another "instance"
    first.add_requirement("agent-1", custom("lead-456"))
    request_id = await first.request_approval("agent-1", "user-123", {})
    await second.approve_request(request_id, "lead-456")
    request = await first.get_request(request_id)
    assert request is not None and request.status is ApprovalStatus.APPROVED
    assert (await first.verify_audit()).ok


@pytest.mark.parametrize("reason", ["", "   ", "x" * 4001, None, 3])
async def test_a_rejection_needs_a_reason_on_every_surface(
    any_manager: ExternalAgentApprovalManager, reason: object
) -> None:
    request_id = await any_manager.request_approval("agent-1", "user-123", {})
    before = await any_manager.get_audit_trail(request_id)
    with pytest.raises(ValidationError, match="a rejection needs a reason"):
        await any_manager.reject_request(request_id, "lead-456", reason)  # type: ignore[arg-type]
    assert await any_manager.get_audit_trail(request_id) == before
