"""ExternalAgentApprovalManager: routing, decisions, timeouts, waiting, notifications."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from gov_helpers import custom

from dataflow import DataFlow, ValidationError
from dataflow.errors import DataFlowError
from kaizen.governance import (
    AlreadyDecidedError,
    ApprovalConfigurationError,
    ApprovalLevel,
    ApprovalNotFoundError,
    ApprovalRequirement,
    ApprovalStatus,
    ApproverDirectory,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    NotAuthorizedError,
)

WAIT_LIMIT = 60  # seconds; only a guard against hangs


class RecordingProtocol:
    """A control protocol that records what it is asked to send."""

    def __init__(self, fail_for: set[str] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_for = fail_for or set()

    async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
        if approver_id in self.fail_for:
            raise ConnectionError(f"cannot reach {approver_id}")
        self.sent.append((approver_id, payload))


async def test_spec_quick_start(db: DataFlow) -> None:
    protocol = RecordingProtocol()
    # --- the spec's Quick Start verbatim (its DataFlow URL aside), plus one line ---
    storage = ExternalAgentApprovalStorage(db)
    manager = ExternalAgentApprovalManager(
        control_protocol=protocol,  # Optional
        storage_backend=storage,
    )
    manager.set_approvers("copilot-001", ["lead-456"])  # the one added line
    request_id = await manager.request_approval(
        external_agent_id="copilot-001",
        requested_by="user-123",
        metadata={"environment": "production"},
    )
    await manager.approve_request(request_id, "lead-456")
    # --- end of Quick Start ---
    assert manager.storage is storage
    stored = await storage.load(request_id)
    assert stored is not None
    assert (stored.status, stored.approved_by) == (ApprovalStatus.APPROVED, "lead-456")
    assert stored.request_metadata == {"environment": "production"}
    assert [a for a, _ in protocol.sent] == ["lead-456"]
    assert [e.event for e in await storage.events(request_id)] == ["requested", "approved"]
    assert manager.requirements["copilot-001"].custom_approvers == ["lead-456"]


async def test_agent_without_requirement_says_how_to_add_one(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    with pytest.raises(ApprovalConfigurationError) as info:
        await any_manager.request_approval("unknown-agent", "user-123", {})
    assert "set_approvers('unknown-agent'" in str(info.value)
    assert "add_requirement('unknown-agent'" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, DataFlowError)
    assert await any_manager.get_pending_approvals("lead-456") == []


async def test_level_without_approvers_is_a_clear_error(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    any_manager.add_requirement("agent-2", ApprovalRequirement(ApprovalLevel.TEAM_LEAD))
    with pytest.raises(ApprovalConfigurationError, match="set_team"):
        await any_manager.request_approval("agent-2", "user-123", {})


async def test_routing_by_level(any_manager: ExternalAgentApprovalManager) -> None:
    m = any_manager
    m.set_team("user-123", "core")
    m.add_team_lead("core", "lead-1")
    m.add_team_lead("core", "lead-2")
    m.add_team_lead("core", "lead-1")
    m.add_org_admin("admin-1")
    m.set_owner("owner-1")
    expected = {
        ApprovalLevel.TEAM_LEAD: ["lead-1", "lead-2"],
        ApprovalLevel.ADMIN: ["admin-1"],
        ApprovalLevel.OWNER: ["owner-1"],
        ApprovalLevel.CUSTOM: ["c-1", "c-2"],
    }
    for level, approvers in expected.items():
        m.add_requirement(
            f"agent-{level.value}", ApprovalRequirement(level, custom_approvers=["c-1", "c-2"])
        )
        request_id = await m.request_approval(f"agent-{level.value}", "user-123", {})
        request = await m.get_request(request_id)
        assert request is not None and request.approvers == approvers
    assert m.approvers == ApproverDirectory(
        teams={"user-123": "core"},
        team_leads={"core": ["lead-1", "lead-2"]},
        org_admins=["admin-1"],
        owner="owner-1",
    )


def test_determine_if_approval_required() -> None:
    manager = ExternalAgentApprovalManager()
    requirement = ApprovalRequirement(
        ApprovalLevel.ADMIN,
        require_for_environments=["production"],
        require_for_cost_above=10.0,
        require_for_data_classifications=["pii"],
        require_for_operations=["export"],
    )
    manager.add_requirement("a", requirement)
    assert manager.determine_if_approval_required("a", {"cost": 10.5}) == (True, requirement)
    assert manager.determine_if_approval_required("a", {"environment": "production"})[0]
    assert manager.determine_if_approval_required("a", {"data_classifications": ["public", "pii"]})[
        0
    ]
    assert manager.determine_if_approval_required("a", {"data_classifications": "pii"})[0]
    assert manager.determine_if_approval_required("a", {"operation": "export"})[0]
    assert manager.determine_if_approval_required("a", {"cost": 10.0, "environment": "dev"}) == (
        False,
        None,
    )
    assert manager.determine_if_approval_required("a", {"cost": "lots"}) == (False, None)
    assert manager.determine_if_approval_required("b", {"cost": 1e9}) == (False, None)
    assert manager.requirements == {"a": requirement}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"approval_timeout_seconds": 0},
        {"approval_timeout_seconds": -5},
        {"approval_timeout_seconds": math.inf},
        {"approval_timeout_seconds": True},
        {"custom_approvers": [""]},
    ],
)
def test_bad_requirements_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ApprovalRequirement(ApprovalLevel.CUSTOM, **kwargs)
    with pytest.raises(ValidationError):
        ApprovalRequirement("custom")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ExternalAgentApprovalManager().add_requirement("a", "not a requirement")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agent", "user", "metadata"),
    [
        ("", "user-1", {}),
        ("agent-1", "", {}),
        ("agent-1", None, {}),
        ("agent-1", "user-1", {"cost": math.nan}),
        ("agent-1", "user-1", {"obj": object()}),
        ("agent-1", "user-1", ["not", "a", "dict"]),
    ],
)
async def test_bad_input_writes_nothing(
    any_manager: ExternalAgentApprovalManager, agent: Any, user: Any, metadata: Any
) -> None:
    protocol = RecordingProtocol()
    any_manager.protocol = protocol
    with pytest.raises(ValueError):
        await any_manager.request_approval(agent, user, metadata)
    assert await any_manager.get_pending_approvals("lead-456") == []
    assert (await any_manager.verify_audit()).events == 0
    assert protocol.sent == []


async def test_decisions_are_classified(any_manager: ExternalAgentApprovalManager) -> None:
    m = any_manager
    request_id = await m.request_approval("agent-1", "user-123", {"cost": 20})
    with pytest.raises(ApprovalNotFoundError) as missing:
        await m.approve_request("no-such-id", "lead-456")
    assert isinstance(missing.value, ValueError)
    with pytest.raises(NotAuthorizedError) as denied:
        await m.approve_request(request_id, "lead")
    assert isinstance(denied.value, ValueError)
    await m.reject_request(request_id, "lead-789", "too expensive")
    with pytest.raises(AlreadyDecidedError) as decided:
        await m.approve_request(request_id, "lead-456")
    assert decided.value.status is ApprovalStatus.REJECTED and "rejected" in str(decided.value)
    assert isinstance(decided.value, ValueError)
    request = await m.get_request(request_id)
    assert request is not None
    assert (request.status, request.approved_by, request.rejection_reason) == (
        ApprovalStatus.REJECTED,
        "lead-789",
        "too expensive",
    )
    assert request.approved_at is not None
    events = await m.get_audit_trail(request_id)
    assert [(e.event, e.actor) for e in events] == [
        ("requested", "user-123"),
        ("rejected", "lead-789"),
    ]
    assert events[1].details["reason"] == "too expensive"
    assert events[1].details["vote"] == {
        "approver_id": "lead-789",
        "decision": "reject",
        "comment": "too expensive",
        "on_behalf_of": None,
        "metadata": None,
    }
    assert events[1].details["set"]["status"] == "rejected"
    assert (await m.verify_audit(request_id)).ok


async def test_bad_decision_arguments(any_manager: ExternalAgentApprovalManager) -> None:
    request_id = await any_manager.request_approval("agent-1", "user-123", {})
    with pytest.raises(ValidationError):
        await any_manager.approve_request(request_id, "")
    with pytest.raises(ValidationError):
        await any_manager.reject_request(request_id, "lead-456", None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await any_manager.wait_for_approval(request_id, timeout=-1)


async def test_pending_approvals_and_timeout_sweep(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    m = any_manager
    m.add_requirement("fast", custom("lead-456", timeout=0.001))
    fast = [await m.request_approval("fast", "user-1", {"i": i}) for i in range(3)]
    slow = await m.request_approval("agent-1", "user-1", {})
    await asyncio.sleep(0.05)  # let the fast deadlines pass
    assert await m.timeout_pending_approvals() == 3
    assert await m.timeout_pending_approvals() == 0
    for request_id in fast:
        request = await m.get_request(request_id)
        assert request is not None and request.status is ApprovalStatus.TIMEOUT
        assert [e.event for e in await m.get_audit_trail(request_id)] == ["requested", "timed_out"]
    assert [r.id for r in await m.get_pending_approvals("lead-456")] == [slow]
    assert await m.get_pending_approvals("lead-4") == []
    assert (await m.verify_audit()).ok


async def test_deciding_after_the_deadline_times_out(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    any_manager.add_requirement("fast", custom("lead-456", timeout=0.001))
    request_id = await any_manager.request_approval("fast", "user-1", {})
    await asyncio.sleep(0.05)
    with pytest.raises(AlreadyDecidedError) as info:
        await any_manager.approve_request(request_id, "lead-456")
    assert info.value.status is ApprovalStatus.TIMEOUT
    assert await any_manager.timeout_pending_approvals() == 0


async def test_wait_returns_true_when_approved_meanwhile(
    any_manager: ExternalAgentApprovalManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.governance import _deadlines

    # No periodic re-read: the waiter must be woken by the decision (NOTIFY, event or backoff).
    monkeypatch.setattr(_deadlines, "_RECHECK_SECONDS", 3600.0)
    request_id = await any_manager.request_approval("agent-1", "user-1", {})

    async def approve_soon() -> None:
        await asyncio.sleep(0.2)
        await any_manager.approve_request(request_id, "lead-456")

    task = asyncio.create_task(approve_soon())
    # The wait itself would last an hour; only being woken ends it before the hang guard.
    waiting = any_manager.wait_for_approval(request_id, timeout=3600)
    assert await asyncio.wait_for(waiting, WAIT_LIMIT) is True
    await task


async def test_wait_ignores_decisions_of_other_requests(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    mine = await any_manager.request_approval("agent-1", "user-1", {})
    other = await any_manager.request_approval("agent-1", "user-1", {})
    task = asyncio.create_task(any_manager.wait_for_approval(mine, timeout=WAIT_LIMIT))
    await asyncio.sleep(0.1)
    await any_manager.approve_request(other, "lead-456")
    await asyncio.sleep(0.1)
    assert not task.done()
    await any_manager.reject_request(mine, "lead-456", "no")
    assert await task is False


async def test_wait_returns_false_when_rejected(any_manager: ExternalAgentApprovalManager) -> None:
    request_id = await any_manager.request_approval("agent-1", "user-1", {})
    task = asyncio.create_task(any_manager.wait_for_approval(request_id, timeout=WAIT_LIMIT))
    await asyncio.sleep(0.1)
    await any_manager.reject_request(request_id, "lead-789", "no")
    assert await task is False
    assert await any_manager.wait_for_approval(request_id, timeout=0) is False


async def test_wait_timeout_leaves_request_pending(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    request_id = await any_manager.request_approval("agent-1", "user-1", {})
    assert await any_manager.wait_for_approval(request_id, timeout=0.3) is False
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status is ApprovalStatus.PENDING


async def test_wait_past_the_deadline_records_the_timeout(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    any_manager.add_requirement("fast", custom("lead-456", timeout=0.3))
    request_id = await any_manager.request_approval("fast", "user-1", {})
    assert await any_manager.wait_for_approval(request_id, timeout=WAIT_LIMIT) is False
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status is ApprovalStatus.TIMEOUT


async def test_wait_for_unknown_request(any_manager: ExternalAgentApprovalManager) -> None:
    with pytest.raises(ApprovalNotFoundError):
        await any_manager.wait_for_approval("nope", timeout=1)


async def test_notification_payload(any_manager: ExternalAgentApprovalManager) -> None:
    protocol = RecordingProtocol()
    any_manager.protocol = protocol
    any_manager.base_url = "https://kaizen.example.com/"
    metadata = {"cost": 15.0, "environment": "production"}
    request_id = await any_manager.request_approval("agent-1", "user-123", metadata)
    request = await any_manager.get_request(request_id)
    assert request is not None
    assert [a for a, _ in protocol.sent] == ["lead-456", "lead-789"]
    payload = protocol.sent[0][1]
    assert payload == {
        "request_id": request_id,
        "external_agent_id": "agent-1",
        "requested_by": "user-123",
        "approval_reason": "External agent invocation requires approval",
        "metadata": metadata,
        "approvers": ["lead-456", "lead-789"],
        "created_at": request.created_at.isoformat(),
        "deadline_at": request.deadline_at.isoformat() if request.deadline_at else None,
        "quorum": 1,
        "escalated": False,
        "url": f"https://kaizen.example.com/approvals/{request_id}",
        "approve_url": f"https://kaizen.example.com/approvals/{request_id}?action=approve",
        "reject_url": f"https://kaizen.example.com/approvals/{request_id}?action=reject",
    }


async def test_failing_notifier_never_loses_the_request(
    any_manager: ExternalAgentApprovalManager, caplog: pytest.LogCaptureFixture
) -> None:
    protocol = RecordingProtocol(fail_for={"lead-456"})
    any_manager.protocol = protocol
    with caplog.at_level(logging.ERROR, logger="kaizen.governance"):
        request_id = await any_manager.request_approval("agent-1", "user-123", {})
    assert [a for a, _ in protocol.sent] == ["lead-789"]
    assert "lead-456" in caplog.text
    assert [r.id for r in await any_manager.get_pending_approvals("lead-456")] == [request_id]
    await any_manager.approve_request(request_id, "lead-456")


async def test_in_memory_mode(db: DataFlow) -> None:
    manager = ExternalAgentApprovalManager()
    assert manager.storage is None
    manager.add_requirement("agent-1", custom("lead-456"))
    request_id = await manager.request_approval("agent-1", "user-1", {"x": 1})
    await manager.approve_request(request_id, "lead-456")
    assert await manager.wait_for_approval(request_id, timeout=0) is True
    # Nothing reached the database.
    assert "ApprovalRequestRecord" not in db.models


async def test_new_manager_on_reopened_database_acts_on_old_requests(db_url: str) -> None:
    first = DataFlow(db_url)
    old = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(first))
    old.add_requirement("agent-1", custom("lead-456"))
    request_id = await old.request_approval("agent-1", "user-1", {"restart": True})
    await first.close()
    second = DataFlow(db_url)
    try:
        new = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(second))
        assert [r.id for r in await new.get_pending_approvals("lead-456")] == [request_id]
        await new.approve_request(request_id, "lead-456")
        assert await new.wait_for_approval(request_id, timeout=0) is True
        assert (await new.verify_audit()).ok
    finally:
        await second.close()


async def _listening_connections(db: DataFlow) -> int:
    if db.dialect_name != "postgresql":
        return 0
    import asyncpg

    conn = await asyncpg.connect(db.url.replace("postgresql://", "postgres://"))
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            )
        )
    finally:
        await conn.close()


async def test_many_waiters_share_one_listener(db: DataFlow) -> None:
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.add_requirement("agent-1", custom("lead-456"))
    ids = [await manager.request_approval("agent-1", "user-1", {}) for _ in range(20)]
    waits = [asyncio.create_task(manager.wait_for_approval(i, timeout=WAIT_LIMIT)) for i in ids]
    await asyncio.sleep(0.3)
    expected = 1 if db.dialect.supports_notify else 0
    assert await _listening_connections(db) == expected
    for i, request_id in enumerate(ids):
        if i % 2:
            await manager.approve_request(request_id, "lead-456")
        else:
            await manager.reject_request(request_id, "lead-456", "no")
    assert await asyncio.gather(*waits) == [bool(i % 2) for i in range(len(ids))]
    for _ in range(WAIT_LIMIT * 20):  # the listener closes after the last waiter leaves
        if not await _listening_connections(db):
            break
        await asyncio.sleep(0.05)
    assert await _listening_connections(db) == 0


async def test_waiters_poll_when_notifications_fail(
    db: DataFlow, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from kaizen.governance import _deadlines

    def broken_listen(channel: str) -> Any:
        raise ConnectionError("listener down")

    monkeypatch.setattr(db, "listen", broken_listen)
    monkeypatch.setattr(_deadlines, "_RECHECK_SECONDS", 0.1)
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.add_requirement("agent-1", custom("lead-456"))
    request_id = await manager.request_approval("agent-1", "user-1", {})
    with caplog.at_level(logging.WARNING, logger="kaizen.governance"):
        task = asyncio.create_task(manager.wait_for_approval(request_id, timeout=WAIT_LIMIT))
        await asyncio.sleep(0.2)
        await manager.approve_request(request_id, "lead-456")
        assert await task is True
    if db.dialect.supports_notify:
        assert "approval notifications stopped" in caplog.text


async def test_a_hanging_notifier_does_not_hold_up_the_other_approvers() -> None:
    from kaizen.governance.notify import notify_approvers

    class HangsForOne(RecordingProtocol):
        async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
            if approver_id == "slow":
                await asyncio.sleep(WAIT_LIMIT)
            await super().send_approval_request(approver_id, payload)

    protocol = HangsForOne(fail_for={"broken"})
    manager = ExternalAgentApprovalManager()
    manager.add_requirement("agent", custom("slow", "broken", "fast"))
    request_id = await manager.request_approval("agent", "user", {})
    request = await manager.get_request(request_id)
    assert request is not None
    delivered = await asyncio.wait_for(
        notify_approvers(protocol, request, send_timeout=0.05), WAIT_LIMIT / 2
    )
    assert delivered == 1
    assert [approver for approver, _ in protocol.sent] == ["fast"]
