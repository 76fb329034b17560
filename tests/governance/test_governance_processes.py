"""Several app instances as real OS processes sharing one database."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from gov_helpers import Worker, custom, run_worker

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
)

RACERS = 8
REQUESTS = 50


async def test_create_in_a_approve_in_b_wait_in_c(db_url: str) -> None:
    [request_id] = await run_worker(db_url, "create", count=1, approvers=["lead-456"])
    # Waits up to an hour: only being woken by the decision ends it before the hang guard.
    waiter = await Worker.start(db_url, "wait", id=request_id, timeout=3600, recheck=3600)
    await waiter.expect("waiting")
    assert await run_worker(db_url, "approve", id=request_id, approver="lead-456") == "approved"
    assert await waiter.result() is True
    db = DataFlow(db_url)
    try:
        storage = ExternalAgentApprovalStorage(db)
        stored = await storage.load(request_id)
        assert stored is not None and stored.status is ApprovalStatus.APPROVED
        assert [e.event for e in await storage.events(request_id)] == ["requested", "approved"]
    finally:
        await db.close()


async def test_racing_instances_decide_each_request_exactly_once(db_url: str) -> None:
    approvers = [f"approver-{i}" for i in range(RACERS)]
    db = DataFlow(db_url)
    try:
        manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
        manager.add_requirement("agent-x", custom(*approvers))
        ids = [
            await manager.request_approval("agent-x", "user-1", {"n": i}) for i in range(REQUESTS)
        ]
        workers = []
        for i, approver in enumerate(approvers):
            order = ids if i % 2 == 0 else ids[::-1]
            action = "approve" if i % 3 else "reject"
            workers.append(
                await Worker.start(
                    db_url, "race", ids=order, approver=approver, action=action, approvers=approvers
                )
            )
        for worker in workers:
            await worker.expect("ready")
        for worker in workers:
            worker.go()
        results = await asyncio.gather(*(w.result() for w in workers))
        await _check_race(manager, ids, approvers, results)
    finally:
        await db.close()


async def _check_race(
    manager: ExternalAgentApprovalManager,
    ids: list[str],
    approvers: list[str],
    results: list[dict[str, dict[str, str]]],
) -> None:
    winners: dict[str, list[tuple[str, str]]] = {i: [] for i in ids}
    for approver, result in zip(approvers, results, strict=True):
        assert set(result["won"]) | set(result["lost"]) == set(ids)  # every attempt got an answer
        for request_id, action in result["won"].items():
            winners[request_id].append((approver, action))
    assert all(len(w) == 1 for w in winners.values()), winners
    storage = manager.storage
    assert storage is not None
    for request_id, [(approver, action)] in winners.items():
        request = await manager.get_request(request_id)
        assert request is not None
        expected = ApprovalStatus.APPROVED if action == "approve" else ApprovalStatus.REJECTED
        assert (request.status, request.approved_by) == (expected, approver)
        events = await storage.events(request_id)
        assert [(e.event, e.actor) for e in events] == [
            ("requested", "user-1"),
            ("approved" if action == "approve" else "rejected", approver),
        ]
        for result in results:
            if request_id in result["lost"]:
                assert result["lost"][request_id] == expected.value
    counts = Counter(a for w in winners.values() for _, a in w)
    assert await storage.count_by_status(ApprovalStatus.APPROVED) == counts["approve"]
    assert await storage.count_by_status(ApprovalStatus.REJECTED) == counts["reject"]
    report = await storage.verify_audit()
    assert report.ok and report.events == 2 * len(ids)


async def test_concurrent_sweepers_count_each_timeout_once(db_url: str) -> None:
    db = DataFlow(db_url)
    try:
        storage = ExternalAgentApprovalStorage(db)
        past = utcnow() - timedelta(seconds=5)
        overdue = [_request(f"overdue-{i:03d}", past) for i in range(60)]
        for request in overdue:
            await storage.save(request)
        await storage.save(_request("later", utcnow() + timedelta(hours=1)))
        sweepers = [await Worker.start(db_url, "sweep") for _ in range(3)]
        for sweeper in sweepers:
            await sweeper.expect("ready")
        for sweeper in sweepers:
            sweeper.go()
        counts = await asyncio.gather(*(s.result() for s in sweepers))
        assert sum(counts) == len(overdue)
        assert await storage.count_by_status(ApprovalStatus.TIMEOUT) == len(overdue)
        assert [r.id for r in await storage.list_by_status(ApprovalStatus.PENDING)] == ["later"]
        for request in overdue:
            assert [e.event for e in await storage.events(request.id)] == ["requested", "timed_out"]
        assert (await storage.verify_audit()).ok
    finally:
        await db.close()


def _request(request_id: str, deadline: object) -> ExternalAgentApprovalRequest:
    now = utcnow()
    return ExternalAgentApprovalRequest(
        id=request_id,
        external_agent_id="agent-x",
        requested_by="user-1",
        approvers=["lead"],
        status=ApprovalStatus.PENDING,
        approval_reason=None,
        request_metadata={},
        created_at=now,
        deadline_at=deadline,  # type: ignore[arg-type]
    )
