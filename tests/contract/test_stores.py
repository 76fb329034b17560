"""Both stores on every target: what the managers rely on."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    policy,
)
from kaizen.integrations.nexus import CrossChannelSession, NexusSessionManager, SessionStorage


def _request(request_id: str, *, overdue: bool = False) -> ExternalAgentApprovalRequest:
    now = utcnow()
    return ExternalAgentApprovalRequest(
        id=request_id,
        external_agent_id="agent",
        requested_by="user",
        approvers=["lead-1", "lead-2"],
        status=ApprovalStatus.PENDING,
        approval_reason="deploy",
        request_metadata={"cost": 15.0, "env": "prod"},
        created_at=now,
        deadline_at=now + timedelta(seconds=-5 if overdue else 3600),
    )


async def test_approval_storage_round_trip_and_queries(db: DataFlow) -> None:
    storage = ExternalAgentApprovalStorage(db)
    await storage.save(_request("r1"))
    loaded = await storage.load("r1")
    assert loaded is not None and loaded.request_metadata == {"cost": 15.0, "env": "prod"}
    assert [r.id for r in await storage.list_by_approver("lead-2")] == ["r1"]
    assert [r.id for r in await storage.list_pending_for_agent("agent")] == ["r1"]
    assert await storage.count_by_status(ApprovalStatus.PENDING) == 1


async def test_decisions_happen_exactly_once(db: DataFlow) -> None:
    storage = ExternalAgentApprovalStorage(db)
    await storage.save(_request("r1"))

    read = await storage.load("r1")  # both decide from the same state: one applies
    assert read is not None

    async def decide(actor: str) -> bool:
        return await storage.append(policy.cast(read, actor, "approve", now=utcnow()))

    assert sorted(await asyncio.gather(decide("lead-1"), decide("lead-2"))) == [False, True]
    request = await storage.load("r1")
    assert request is not None and request.status is ApprovalStatus.APPROVED
    assert [e.event for e in await storage.events("r1")] == ["requested", "approved"]
    assert (await storage.verify_audit()).ok


async def test_sweeps_and_deletes_keep_the_trail(db: DataFlow) -> None:
    storage = ExternalAgentApprovalStorage(db)
    for i in range(3):
        await storage.save(_request(f"late-{i}", overdue=True))
    await storage.save(_request("on-time"))
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    assert await manager.timeout_pending_approvals() == 3
    assert await storage.delete("on-time")
    assert [e.event for e in await storage.events("on-time")] == ["requested", "deleted"]
    assert (await storage.verify_audit()).ok


async def test_the_approval_manager_end_to_end(db: DataFlow) -> None:
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.set_approvers("copilot", ["lead"])
    request_id = await manager.request_approval("copilot", "user", {"environment": "prod"})
    await manager.approve_request(request_id, "lead")
    assert await manager.wait_for_approval(request_id, timeout=5) is True


async def test_session_storage_round_trip_merge_and_cleanup(db: DataFlow) -> None:
    storage = SessionStorage(db)
    manager = NexusSessionManager(storage_backend=storage)
    session = await manager.create_session_async(user_id="u1")
    results = await asyncio.gather(
        *(
            manager.update_session_state_async(session.session_id, {f"k{i}": i}, channel="api")
            for i in range(10)
        )
    )
    assert results == [True] * 10
    loaded = await manager.load_session_async(session.session_id)
    assert loaded is not None and loaded.state == {f"k{i}": i for i in range(10)}
    assert "api" in loaded.channel_activity
    past = utcnow() - timedelta(hours=2)
    await storage.save(
        CrossChannelSession(
            user_id="u1", created_at=past, last_accessed=past, ttl=timedelta(hours=1)
        )
    )
    assert [s.session_id for s in await storage.list_by_user("u1")] == [session.session_id]
    assert await storage.count_active() == 1
    assert await storage.cleanup_expired() == 1
