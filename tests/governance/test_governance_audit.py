"""The hash-chained audit trail: tampering of any kind is detected."""

from __future__ import annotations

import dataclasses

import pytest
from gov_helpers import custom

from dataflow import DataFlow
from kaizen.governance import (
    AuditReport,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
    _verify,
)
from kaizen.governance.audit import GENESIS, make_event

AUDIT = "ApprovalAuditRecord"
REQUESTS = "ApprovalRequestRecord"


async def _decided(manager: ExternalAgentApprovalManager, n: int) -> list[str]:
    ids = []
    for i in range(n):
        request_id = await manager.request_approval("agent-1", "user-1", {"i": i, "cost": 1.5})
        await manager.approve_request(request_id, "lead-456")
        ids.append(request_id)
    return ids


def _problems(report: AuditReport) -> list[tuple[str, int | None, str]]:
    return [(p.request_id, p.seq, p.message) for p in report.problems]


async def test_untouched_trails_verify(manager: ExternalAgentApprovalManager) -> None:
    ids = await _decided(manager, 3)
    report = await manager.verify_audit()
    assert report.ok and (report.requests, report.events) == (3, 6)
    assert (await manager.verify_audit(ids[0])).ok
    assert (await manager.verify_audit("never-existed")).requests == 0


@pytest.mark.parametrize(
    "values",
    [
        {"actor": "mallory"},
        {"details": '{"reason":"forged"}'},
        {"details": "not json"},
        {"event": "rejected"},
    ],
)
async def test_an_edited_event_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow, values: dict[str, str]
) -> None:
    ids = await _decided(manager, 2)
    assert await db.update_where(AUDIT, {"request_id": ids[1], "seq": 1}, values) == 1
    for report in (await manager.verify_audit(), await manager.verify_audit(ids[1])):
        assert not report.ok
        assert [(r, s) for r, s, _ in _problems(report)] == [(ids[1], 1)]
        assert "modified" in report.problems[0].message
    assert (await manager.verify_audit(ids[0])).ok


async def test_a_deleted_last_event_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow
) -> None:
    ids = await _decided(manager, 2)
    assert await db.delete_where(AUDIT, {"request_id": ids[0], "seq": 1}) == 1
    report = await manager.verify_audit()
    assert _problems(report) == [(ids[0], 1, "events after seq 0 are missing")]


async def test_a_deleted_first_event_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow
) -> None:
    [request_id] = await _decided(manager, 1)
    assert await db.delete_where(AUDIT, {"request_id": request_id, "seq": 0}) == 1
    assert _problems(await manager.verify_audit()) == [(request_id, 0, "event 0 is missing")]


async def test_a_trail_deleted_entirely_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow
) -> None:
    [request_id] = await _decided(manager, 1)
    assert await db.delete_where(AUDIT, {"request_id": request_id}) == 2
    assert _problems(await manager.verify_audit()) == [
        (request_id, None, "request has no audit events")
    ]
    assert not (await manager.verify_audit(request_id)).ok


async def test_a_request_row_deleted_behind_our_back_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow
) -> None:
    [request_id] = await _decided(manager, 1)
    assert await db.delete(REQUESTS, request_id)
    [(rid, seq, message)] = _problems(await manager.verify_audit())
    assert (rid, seq) == (request_id, None) and "no 'deleted' event" in message


async def test_a_forged_extra_event_is_detected(
    manager: ExternalAgentApprovalManager, db: DataFlow
) -> None:
    [request_id] = await _decided(manager, 1)
    events = await manager.get_audit_trail(request_id)
    forged = make_event(request_id, 2, "approved", "mallory", events[-1].occurred_at, {}, GENESIS)
    await db.insert(
        AUDIT,
        {
            "id": forged.hash,
            "request_id": request_id,
            "seq": 2,
            "event": forged.event,
            "actor": forged.actor,
            "occurred_at": forged.occurred_at,
            "details": "{}",
            "prev_hash": forged.prev_hash,
            "hash": forged.hash,
        },
    )
    messages = [m for _, _, m in _problems(await manager.verify_audit())]
    assert "chain broken: prev_hash does not match" in messages
    assert "latest event does not match the request row" in messages


async def test_verify_pages_through_everything(
    manager: ExternalAgentApprovalManager, db: DataFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_verify, "_PAGE", 3)
    ids = await _decided(manager, 7)
    storage = manager.storage
    assert storage is not None
    assert await storage.delete(ids[3])
    await db.update_where(AUDIT, {"request_id": ids[5], "seq": 0}, {"actor": "mallory"})
    await db.delete_where(AUDIT, {"request_id": ids[6]})
    report = await manager.verify_audit()
    assert sorted((r, s) for r, s, _ in _problems(report)) == sorted([(ids[5], 0), (ids[6], None)])
    assert (report.requests, report.events) == (7, 13)


async def test_in_memory_trail_detects_tampering() -> None:
    manager = ExternalAgentApprovalManager()
    manager.add_requirement("agent-1", custom("lead-456"))
    ids = await _decided(manager, 2)
    store = manager._store
    assert isinstance(store, InMemoryApprovalStore)
    chain = store._events[ids[0]]
    chain[1] = dataclasses.replace(chain[1], actor="mallory")
    assert _problems(await manager.verify_audit()) == [
        (ids[0], 1, "event was modified (hash mismatch)")
    ]
    assert (await manager.verify_audit("unknown")).requests == 0


async def test_events_of_unknown_request(db: DataFlow) -> None:
    assert await ExternalAgentApprovalStorage(db).events("nope") == []
