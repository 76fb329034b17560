"""Bad input to the approval workflow: our errors, the same on every database and in
memory, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from gov_helpers import custom

from dataflow import DuplicateKeyError, ValidationError
from kaizen.governance import ApprovalRequirement, ExternalAgentApprovalManager
from kaizen.governance.models import ApprovalLevel


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("agent", "user", "metadata", "message"),
    [
        ("agent-1", "user-1", {"deep": _deep(10_000)}, "nested more than 31"),
        ("agent-1", "user-1", {"deep": _deep(40)}, "nested more than 31"),
        ("agent-1", "user-1", {"s": "\ud800"}, "lone surrogate"),
        ("agent-1", "user-1", {"s": "nul\x00"}, "NUL"),
        ("agent-1", "user-1", {"f": 1e16}, "smaller than 1e16"),
        ("agent-1", "user-1", {"e": 1e300}, "smaller than 1e16"),
        ("agent-1", "user-1", {"n": 10**20}, "64 bits"),
        ("agent-1", "user\ud800", {}, "requested_by contains a lone surrogate"),
        ("agent\x00", "user-1", {}, "external_agent_id contains a NUL"),
        ({"not": "hashable"}, "user-1", {}, "external_agent_id must be a non-empty string"),
        ("agent-1", "user-1", [1, 2], "metadata must be a dict"),
    ],
)
async def test_bad_requests_are_refused_before_anything_is_written(
    any_manager: ExternalAgentApprovalManager,
    agent: Any,
    user: Any,
    metadata: Any,
    message: str,
) -> None:
    with pytest.raises(ValidationError, match=message):
        await any_manager.request_approval(agent, user, metadata)
    assert await any_manager.get_pending_approvals("lead-456") == []


async def test_metadata_reloads_as_stored_everywhere(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    request_id = await any_manager.request_approval(
        "agent-1", "user-1", {"f": 9.5e15, "z": -0.0, "i": 2**62, "t": "日本"}
    )
    request = await any_manager.get_request(request_id)
    assert request is not None
    stored = request.request_metadata
    assert stored == {"f": 9.5e15, "z": 0.0, "i": 2**62, "t": "日本"}
    assert isinstance(stored["f"], float) and isinstance(stored["z"], float)


@pytest.mark.parametrize(
    ("approver", "reason", "message"),
    [
        ("lead-456", "bad \ud800 reason", "reason contains a lone surrogate"),
        ("lead-456", "nul \x00", "reason contains a NUL"),
        ("lead\ud800", "fine", "approver id contains a lone surrogate"),
        (["lead-456"], "fine", "approver id must be a non-empty string"),
    ],
)
async def test_bad_decisions_write_nothing(
    any_manager: ExternalAgentApprovalManager, approver: Any, reason: str, message: str
) -> None:
    request_id = await any_manager.request_approval("agent-1", "user-1", {})
    with pytest.raises(ValidationError, match=message):
        await any_manager.reject_request(request_id, approver, reason)
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status.value == "pending"
    assert [e.event for e in await any_manager.get_audit_trail(request_id)] == ["requested"]


async def test_unhashable_ids_are_validation_errors(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    for call in (
        lambda: any_manager.get_request({}),  # type: ignore[arg-type]
        lambda: any_manager.approve_request([], "lead-456"),  # type: ignore[arg-type]
        lambda: any_manager.wait_for_approval({}, 1),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValidationError):
            await call()
    with pytest.raises(ValidationError):
        any_manager.determine_if_approval_required({}, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [1e300, 10**20, float("inf"), 0, -1, True])
def test_approval_timeouts_are_bounded(timeout: Any) -> None:
    with pytest.raises(ValidationError, match="approval_timeout_seconds"):
        ApprovalRequirement(
            ApprovalLevel.CUSTOM, custom_approvers=["a"], approval_timeout_seconds=timeout
        )
    with pytest.raises(ValidationError):
        ExternalAgentApprovalManager().set_approvers("agent", ["a"], timeout_seconds=timeout)


def test_requirements_refuse_bad_approvers_and_reasons() -> None:
    for kwargs in (
        {"custom_approvers": "lead"},
        {"custom_approvers": ["lead\x00"]},
        {"custom_approvers": ["a"], "approval_reason": "\udc00"},
    ):
        with pytest.raises(ValidationError):
            ApprovalRequirement(ApprovalLevel.CUSTOM, **kwargs)  # type: ignore[arg-type]
    requirement = custom("lead-456")
    assert requirement.triggered_by({"data_classifications": [{"unhashable": 1}]}) is False


async def test_a_request_repeated_with_its_id_is_stored_once(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    # After a ConnectionLostError the caller cannot know whether the request was
    # stored: asking again with the same id is safe.
    first = await any_manager.request_approval("agent-1", "user-1", {"n": 1}, request_id="req-1")
    again = await any_manager.request_approval("agent-1", "user-1", {"n": 1}, request_id="req-1")
    assert first == again == "req-1"
    assert [e.event for e in await any_manager.get_audit_trail("req-1")] == ["requested"]
    with pytest.raises(DuplicateKeyError):  # the same id for another request
        await any_manager.request_approval("agent-1", "user-1", {"n": 2}, request_id="req-1")
    with pytest.raises(ValidationError, match="request_id"):
        await any_manager.request_approval("agent-1", "user-1", {}, request_id="")
