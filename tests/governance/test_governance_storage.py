"""ExternalAgentApprovalStorage: the spec's nine methods on every database."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from dataflow import ConfigurationError, DataFlow, DuplicateKeyError, ValidationError
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalNotFoundError,
    ApprovalStatus,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
)

MakeRequest = Callable[..., ExternalAgentApprovalRequest]

PENDING, APPROVED, REJECTED, TIMEOUT = (
    ApprovalStatus.PENDING,
    ApprovalStatus.APPROVED,
    ApprovalStatus.REJECTED,
    ApprovalStatus.TIMEOUT,
)


async def test_save_and_load_round_trip(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    metadata = {"cost": 15.25, "environment": "production", "nested": {"k": [1, "ü", None, True]}}
    request = make_request(approvers=["lead-456", "admin-1"], request_metadata=metadata)
    assert await storage.save(request) == request.id
    loaded = await storage.load(request.id)
    assert loaded == request  # save() sets created_at to the stored value
    assert loaded is not None
    assert loaded.approvers == ["lead-456", "admin-1"]
    assert loaded.request_metadata == metadata
    assert loaded.status is PENDING
    for stamp in (loaded.created_at, loaded.deadline_at):
        assert isinstance(stamp, datetime) and stamp.utcoffset() == timedelta(0)


async def test_load_unknown_is_none(storage: ExternalAgentApprovalStorage) -> None:
    assert await storage.load("no-such-request") is None


async def test_duplicate_id_is_refused(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    request = make_request()
    await storage.save(request)
    with pytest.raises(DuplicateKeyError):
        await storage.save(make_request(id=request.id))
    assert len(await storage.events(request.id)) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"approvers": []},
        {"approvers": [""]},
        {"id": ""},
        {"id": "   "},
        {"external_agent_id": ""},
        {"requested_by": None},
        {"request_metadata": {"cost": math.nan}},
        {"request_metadata": {"cost": math.inf}},
        {"request_metadata": {"when": datetime(2030, 1, 1)}},
        {"request_metadata": {"tags": {"a", "b"}}},
        {"request_metadata": ["not", "a", "dict"]},
        {"created_at": datetime(2030, 1, 1)},
    ],
)
async def test_bad_input_writes_nothing(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest, fields: dict[str, object]
) -> None:
    request = make_request(**fields)
    with pytest.raises(ValidationError) as info:
        await storage.save(request)
    assert isinstance(info.value, ValueError)
    assert await storage.count_by_status(PENDING) == 0
    assert (await storage.verify_audit()).events == 0


async def test_update_persists_and_audits(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    request = make_request()
    await storage.save(request)
    request.request_metadata = {"cost": 99}
    request.approvers = ["lead-456", "lead-2"]
    await storage.update(request)
    request.status, request.approved_by, request.approved_at = APPROVED, "lead-2", utcnow()
    await storage.update(request)
    loaded = await storage.load(request.id)
    assert loaded is not None
    assert (loaded.status, loaded.approved_by, loaded.request_metadata) == (
        APPROVED,
        "lead-2",
        {"cost": 99},
    )
    assert [r.id for r in await storage.list_by_approver("lead-2")] == [request.id]
    assert [e.event for e in await storage.events(request.id)] == [
        "requested",
        "updated",
        "approved",
    ]
    assert (await storage.verify_audit(request.id)).ok


async def test_update_unknown_raises(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    with pytest.raises(ApprovalNotFoundError) as info:
        await storage.update(make_request(id="missing"))
    assert isinstance(info.value, ValueError)


async def test_delete_keeps_the_audit_trail(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    request = make_request()
    await storage.save(request)
    assert await storage.delete(request.id) is True
    assert await storage.delete(request.id) is False
    assert await storage.load(request.id) is None
    assert [e.event for e in await storage.events(request.id)] == ["requested", "deleted"]
    assert await storage.list_by_approver("lead-456") == []
    report = await storage.verify_audit()
    assert report.ok and report.requests == 1


async def _save_many(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest, n: int, **kw: object
) -> list[str]:
    ids = []
    for i in range(n):
        request = make_request(id=f"r{i:03d}", **kw)
        await storage.save(request)
        ids.append(request.id)
    return ids


async def test_list_by_status_newest_first_with_pagination(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    await _save_many(storage, make_request, 7)
    rejected = make_request(id="rejected", status=REJECTED)
    await storage.save(rejected)
    everything = await storage.list_by_status(PENDING)
    keys = [(r.created_at, r.id) for r in everything]
    assert keys == sorted(keys, reverse=True) and len(keys) == 7
    pages = [await storage.list_by_status(PENDING, limit=3, offset=o) for o in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [r.id for p in pages for r in p] == [r.id for r in everything]
    assert [r.id for r in await storage.list_by_status(REJECTED)] == ["rejected"]
    assert await storage.count_by_status(PENDING) == 7
    assert await storage.count_by_status(REJECTED) == 1
    assert await storage.count_by_status(TIMEOUT) == 0


async def test_equal_created_at_has_a_stable_tiebreak(
    storage: ExternalAgentApprovalStorage, db: DataFlow
) -> None:
    # insert_many stamps every row with the same created_at: only the id can order them.
    ids = ["t-b", "t-d", "t-a", "t-c"]
    rows = [
        {"id": i, "external_agent_id": "agent-1", "requested_by": "u", "approvers_json": ["lead"]}
        for i in ids
    ]
    await db.insert_many("ApprovalRequestRecord", rows)
    first = [r.id for r in await storage.list_by_status(PENDING)]
    assert len({r.created_at for r in await storage.list_by_status(PENDING)}) == 1
    assert first == sorted(ids, reverse=True)
    assert [r.id for r in await storage.list_by_approver("lead")] == first
    pages = [await storage.list_by_status(PENDING, limit=1, offset=o) for o in range(4)]
    assert [p[0].id for p in pages] == first


@pytest.mark.parametrize(
    "approver",
    ["lead", "50%_off", "o'brien", 'say "hi"', "back\\slash", "Jürgen", "李雷", "🚀-ops", "a b"],
)
async def test_list_by_approver_matches_exactly(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest, approver: str
) -> None:
    decoys = [
        "lead-456",
        f"{approver}x",
        f"x{approver}",
        approver.upper() + "-",
        "%",
        "_",
        "l_ad",
        "le%",
    ]
    if approver.swapcase() != approver:
        decoys.append(approver.swapcase())
    for i, decoy in enumerate(decoys):
        await storage.save(make_request(id=f"decoy-{i}", approvers=[decoy]))
    await storage.save(make_request(id="mine-1", approvers=["someone", approver]))
    await storage.save(make_request(id="mine-2", approvers=[approver], status=APPROVED))
    found = await storage.list_by_approver(approver)
    assert [r.id for r in found] == ["mine-2", "mine-1"]
    assert [r.id for r in await storage.list_by_approver(approver, PENDING)] == ["mine-1"]
    assert [r.id for r in await storage.list_by_approver(approver, APPROVED)] == ["mine-2"]


async def test_list_by_approver_is_case_sensitive(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    await storage.save(make_request(id="upper", approvers=["LEAD"]))
    await storage.save(make_request(id="lower", approvers=["lead"]))
    assert [r.id for r in await storage.list_by_approver("lead")] == ["lower"]


async def test_list_by_approver_limit_counts_only_matches(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    for i in range(3):
        await storage.save(make_request(id=f"match-{i}", approvers=["lead"]))
    for i in range(6):  # newer requests of other approvers
        await storage.save(make_request(id=f"other-{i}", approvers=["lead-456"]))
    found = await storage.list_by_approver("lead", limit=2)
    assert [r.id for r in found] == ["match-2", "match-1"]


async def test_list_pending_for_agent(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    await storage.save(make_request(id="a1"))
    await storage.save(make_request(id="a2"))
    await storage.save(make_request(id="a3", status=APPROVED))
    await storage.save(make_request(id="b1", external_agent_id="agent-2"))
    assert [r.id for r in await storage.list_pending_for_agent("agent-1")] == ["a2", "a1"]
    assert [r.id for r in await storage.list_pending_for_agent("agent-1", limit=1)] == ["a2"]
    assert await storage.list_pending_for_agent("agent-3") == []


async def test_expired_pending_oldest_first(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    ids = await _save_many(storage, make_request, 4)
    await storage.save(make_request(id="done", status=APPROVED))
    assert await storage.get_expired_pending_requests(timeout_seconds=3600) == []
    expired = await storage.get_expired_pending_requests(timeout_seconds=-1)
    assert [r.id for r in expired] == ids
    assert [r.id for r in await storage.get_expired_pending_requests(-1, limit=2)] == ids[:2]
    assert await storage.count_by_status(PENDING) == 4  # read-only


async def test_restart_durability(db_url: str, make_request: MakeRequest) -> None:
    first = DataFlow(db_url)
    request = make_request(request_metadata={"k": "v"})
    await ExternalAgentApprovalStorage(first).save(request)
    await first.close()
    second = DataFlow(db_url)
    try:
        storage = ExternalAgentApprovalStorage(second)
        assert await storage.load(request.id) == request
        assert (await storage.verify_audit()).ok
    finally:
        await second.close()


async def test_storage_registers_models_once(db: DataFlow, make_request: MakeRequest) -> None:
    one, two = ExternalAgentApprovalStorage(db), ExternalAgentApprovalStorage(db)
    request = make_request()
    await one.save(request)
    assert await two.load(request.id) == request


async def test_a_foreign_model_of_the_same_name_is_refused(db: DataFlow) -> None:
    @db.model
    class ApprovalRequestRecord:
        id: str

    with pytest.raises(ConfigurationError, match="taken"):
        ExternalAgentApprovalStorage(db)
