"""Claims on approvals: of any number of workers, one acts on an approval (on every
database and in memory; racing OS processes too)."""

from __future__ import annotations

import asyncio

import pytest
from gov_helpers import Worker, custom

from dataflow import DataFlow, ValidationError
from kaizen.governance import (
    ApprovalNotFoundError,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
)

CLAIMERS = 4
REQUESTS = 20


@pytest.fixture(params=["memory", "database"])
async def manager(request: pytest.FixtureRequest, db: DataFlow) -> ExternalAgentApprovalManager:
    storage = ExternalAgentApprovalStorage(db) if request.param == "database" else None
    made = ExternalAgentApprovalManager(storage_backend=storage)
    made.add_requirement("agent-x", custom("lead"))
    return made


async def _approved(manager: ExternalAgentApprovalManager) -> str:
    request_id = await manager.request_approval("agent-x", "user-1", {"n": 1})
    await manager.approve_request(request_id, "lead")
    return request_id


async def test_one_claimant_holds_an_approval_until_it_releases_it(
    manager: ExternalAgentApprovalManager,
) -> None:
    request_id = await _approved(manager)
    claims = await asyncio.gather(*(manager.claim_approval(request_id, f"w{i}") for i in range(5)))
    assert claims.count(True) == 1
    winner = f"w{claims.index(True)}"
    assert await manager.claim_approval(request_id, winner)  # the holder again: a retry
    assert not await manager.release_claim(request_id, "someone-else")
    assert await manager.release_claim(request_id, winner)
    assert not await manager.release_claim(request_id, winner)  # released already
    assert await manager.claim_approval(request_id, "w-next")
    events = [(e.event, e.actor) for e in await manager.get_audit_trail(request_id)]
    assert events == [
        ("requested", "user-1"),
        ("approved", "lead"),
        ("claimed", winner),
        ("released", winner),
        ("claimed", "w-next"),
    ]
    request = await manager.get_request(request_id)
    assert request is not None and request.status.value == "approved"  # claims change nothing
    assert (await manager.verify_audit()).ok


async def test_only_an_approved_request_can_be_claimed(
    manager: ExternalAgentApprovalManager,
) -> None:
    pending = await manager.request_approval("agent-x", "user-1", {"n": 2})
    with pytest.raises(ValidationError, match="pending: only an approved request"):
        await manager.claim_approval(pending, "w1")
    await manager.reject_request(pending, "lead", "no")
    with pytest.raises(ValidationError, match="rejected"):
        await manager.claim_approval(pending, "w1")
    with pytest.raises(ApprovalNotFoundError):
        await manager.claim_approval("nope", "w1")
    for bad in ("", " w", 3):
        with pytest.raises(ValidationError):
            await manager.claim_approval(pending, bad)  # type: ignore[arg-type]
    assert [e.event for e in await manager.get_audit_trail(pending)] == ["requested", "rejected"]


async def test_racing_processes_claim_each_approval_once(db_url: str) -> None:
    db = DataFlow(db_url)
    try:
        manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
        manager.add_requirement("agent-x", custom("lead"))
        ids = [await _approved(manager) for _ in range(REQUESTS)]
        workers = [
            await Worker.start(db_url, "claim", ids=ids if i % 2 else ids[::-1], claimant=f"p{i}")
            for i in range(CLAIMERS)
        ]
        for worker in workers:
            await worker.expect("ready")
        for worker in workers:
            worker.go()
        won = await asyncio.gather(*(w.result() for w in workers))
        assert sorted(i for w in won for i in w) == sorted(ids)  # each exactly once
        for claimant, ids_won in enumerate(won):
            for request_id in ids_won:
                trail = await manager.get_audit_trail(request_id)
                assert [(e.event, e.actor) for e in trail][2:] == [("claimed", f"p{claimant}")]
        assert (await manager.verify_audit()).ok
    finally:
        await db.close()
