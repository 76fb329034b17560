"""Contract shared by the database storage and the in-memory store, and race handling."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from gov_helpers import custom, sweep, vote

from dataflow import ConcurrencyError, DataFlow, DuplicateKeyError, RetryPolicy, ValidationError
from dataflow.values import utcnow
from kaizen.governance import (
    AlreadyDecidedError,
    ApprovalNotFoundError,
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
    _deadlines,
    approval_manager,
    policy,
)
from kaizen.governance._schema import audit_row
from kaizen.governance.audit import SWEPT, canonical, make_event

MakeRequest = Callable[..., ExternalAgentApprovalRequest]
PENDING, APPROVED, TIMEOUT = ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.TIMEOUT
Store = ExternalAgentApprovalStorage | InMemoryApprovalStore
REQUESTS, AUDIT = "ApprovalRequestRecord", "ApprovalAuditRecord"


@pytest.fixture(params=["storage", "memory"])
def store(request: pytest.FixtureRequest, db: DataFlow) -> Store:
    if request.param == "storage":
        return ExternalAgentApprovalStorage(db)
    return InMemoryApprovalStore()


async def test_common_queries(store: Store, make_request: MakeRequest) -> None:
    for i in range(3):
        await store.save(make_request(id=f"p{i}"))
    await store.save(make_request(id="a0", status=APPROVED))
    with pytest.raises(DuplicateKeyError):
        await store.save(make_request(id="p0"))
    assert [r.id for r in await store.list_by_status(PENDING)] == ["p2", "p1", "p0"]
    assert [r.id for r in await store.list_by_status(PENDING, limit=1, offset=1)] == ["p1"]
    assert await store.count_by_status(PENDING) == 3
    assert await store.count_by_status(APPROVED) == 1
    expired = await store.get_expired_pending_requests(timeout_seconds=-1, limit=2)
    assert [r.id for r in expired] == ["p0", "p1"]
    assert await store.get_expired_pending_requests(timeout_seconds=3600) == []
    assert await store.delete("p1") is True
    assert await store.delete("p1") is False
    assert [e.event for e in await store.events("p1")] == ["requested", "deleted"]
    assert (await store.verify_audit()).ok


async def test_loaded_requests_are_copies(store: Store, make_request: MakeRequest) -> None:
    await store.save(make_request(id="x", approvers=["lead"]))
    loaded = await store.load("x")
    assert loaded is not None
    loaded.approvers.append("mallory")
    again = await store.load("x")
    assert again is not None and again.approvers == ["lead"]


async def test_append_is_compare_and_set(store: Store, make_request: MakeRequest) -> None:
    await store.save(make_request(id="r", approvers=["lead-456", "lead-789"], quorum=2))
    read = await store.load("r")
    assert read is not None and (read.audit_seq, read.votes) == (0, [])
    first = policy.cast(read, "lead-456", "approve", now=utcnow(), comment="one")
    second = policy.cast(read, "lead-789", "approve", now=utcnow())
    assert await store.append(first)
    assert not await store.append(second)  # computed from the state before `first`
    assert not await store.append(dataclasses.replace(first, request_id="missing"))
    again = await store.load("r")
    assert again is not None and again.status is PENDING and again.audit_seq == 1
    assert [(v.approver_id, v.comment) for v in again.votes] == [("lead-456", "one")]
    decided = policy.cast(again, "lead-789", "approve", now=utcnow())
    assert await store.append_many([decided, second]) == [True, False]
    final = await store.load("r")
    assert final is not None and (final.status, final.approved_by) == (APPROVED, "lead-789")
    assert [e.event for e in await store.events("r")] == ["requested", "voted", "approved"]
    assert (await store.verify_audit()).ok


async def test_overdue_lists_pending_requests_past_their_deadline(
    store: Store, make_request: MakeRequest
) -> None:
    now = utcnow()
    await store.save(make_request(id="open", deadline_at=None))
    await store.save(make_request(id="later", deadline_at=now + timedelta(hours=1)))
    await store.save(make_request(id="late-2", deadline_at=now - timedelta(seconds=1)))
    await store.save(make_request(id="late-1", deadline_at=now - timedelta(seconds=2)))
    assert [r.id for r in await store.overdue(now)] == ["late-1", "late-2"]
    assert [r.id for r in await store.overdue(now, 1)] == ["late-1"]
    assert await store.append_many([]) == []


async def test_sweep_in_small_batches(
    storage: ExternalAgentApprovalStorage,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_deadlines, "_SWEEP_PAGE", 2)
    past = utcnow() - timedelta(minutes=1)
    for i in range(5):
        await storage.save(make_request(id=f"o{i}", deadline_at=past))
    assert await sweep(storage) == 5
    assert await storage.count_by_status(TIMEOUT) == 5
    assert await sweep(storage) == 0


def _interfere(
    monkeypatch: pytest.MonkeyPatch, db: DataFlow, change: Callable[[], Any], times: int = 1
) -> None:
    """After the next ``times`` reads of a request, run ``change`` (another instance acting)."""
    real_get = db.get
    left = [times]
    busy = [False]

    async def get(model: Any, id: str) -> Any:
        row = await real_get(model, id)
        if left[0] > 0 and not busy[0] and model == "ApprovalRequestRecord":
            left[0] -= 1
            busy[0] = True
            try:
                await change()
            finally:
                busy[0] = False
        return row

    monkeypatch.setattr(db, "get", get)


async def test_update_refuses_a_lost_race(
    storage: ExternalAgentApprovalStorage,
    db: DataFlow,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = make_request(id="r")
    await storage.save(request)
    other = ExternalAgentApprovalStorage(db)
    _interfere(
        monkeypatch,
        db,
        lambda: vote(other, "r", "lead-456"),
    )
    request.approval_reason = "changed"
    with pytest.raises(ConcurrencyError):
        await storage.update(request)
    monkeypatch.undo()
    stored = await storage.load("r")
    assert stored is not None and (stored.status, stored.approval_reason) == (
        APPROVED,
        "needs approval",
    )


async def test_delete_retries_after_a_concurrent_change(
    storage: ExternalAgentApprovalStorage,
    db: DataFlow,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await storage.save(make_request(id="r"))
    _interfere(
        monkeypatch,
        db,
        lambda: vote(storage, "r", "lead-456"),
    )
    assert await storage.delete("r") is True
    monkeypatch.undo()
    assert [e.event for e in await storage.events("r")] == ["requested", "approved", "deleted"]
    assert (await storage.verify_audit()).ok


async def test_delete_gives_up_when_the_request_keeps_changing(
    storage: ExternalAgentApprovalStorage,
    db: DataFlow,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = make_request(id="r")
    await storage.save(request)
    other = ExternalAgentApprovalStorage(db)

    async def touch() -> None:
        fresh = await other.load("r")
        assert fresh is not None
        await other.update(fresh)

    _interfere(monkeypatch, db, touch, times=1000)
    with pytest.raises(ConcurrencyError):
        await storage.delete("r")


class FlakyStore:
    """Wraps a store; its first ``append``/``append_many`` calls fail as given (an
    exception, or False: a race lost), then it delegates."""

    def __init__(self, inner: Any, failures: list[Any]) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def append_many(self, changes: Any) -> list[bool]:
        if self.failures:
            raise self.failures.pop(0)
        return list(await self.inner.append_many(changes))

    async def append(self, change: Any) -> bool:
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return bool(failure)
        return bool(await self.inner.append(change))


async def _flaky_manager(any_manager: ExternalAgentApprovalManager, failures: list[Any]) -> str:
    request_id = await any_manager.request_approval("agent-1", "user-1", {})
    any_manager._store = FlakyStore(any_manager._store, failures)
    return request_id


async def test_deadlock_victims_and_lost_races_are_retried(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    request_id = await _flaky_manager(any_manager, [ConcurrencyError("deadlock"), False])
    await any_manager.approve_request(request_id, "lead-456")
    request = await any_manager.get_request(request_id)
    assert request is not None and request.status is APPROVED


async def test_retries_are_bounded(any_manager: ExternalAgentApprovalManager) -> None:
    any_manager.retry_policy = RetryPolicy(base_delay=0)  # the default attempts, no waits
    attempts = any_manager.retry_policy.attempts
    request_id = await _flaky_manager(any_manager, [ConcurrencyError("deadlock")] * attempts)
    with pytest.raises(ConcurrencyError):
        await any_manager.approve_request(request_id, "lead-456")
    request_id = await _flaky_manager(any_manager, [False] * approval_manager._ATTEMPTS)
    with pytest.raises(ConcurrencyError, match="kept changing"):
        await any_manager.approve_request(request_id, "lead-456")
    await any_manager.reject_request(request_id, "lead-456", "fine now")
    with pytest.raises(AlreadyDecidedError):
        await any_manager.approve_request(request_id, "lead-456")


async def test_the_retry_policy_is_the_managers_own(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    any_manager.retry_policy = RetryPolicy(attempts=2, base_delay=0)
    request_id = await _flaky_manager(any_manager, [ConcurrencyError("deadlock")] * 2)
    with pytest.raises(ConcurrencyError):
        await any_manager.approve_request(request_id, "lead-456")
    request_id = await _flaky_manager(any_manager, [ConcurrencyError("deadlock")])
    await any_manager.approve_request(request_id, "lead-456")


async def test_wait_on_a_request_without_deadline(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    await storage.save(make_request(id="no-deadline", deadline_at=None))
    assert await manager.wait_for_approval("no-deadline", timeout=0.2) is False


@pytest.mark.parametrize(
    "fields",
    [{"id": "x" * 256}, {"status": "pending"}, {"approvers": "lead"}, {"deadline_at": "tomorrow"}],
)
def test_request_validation(make_request: MakeRequest, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_request(**fields).validate()


def test_directory_ignores_duplicates() -> None:
    manager = ExternalAgentApprovalManager()
    manager.add_org_admin("admin")
    manager.add_org_admin("admin")
    manager.add_requirement("a", custom("c"))
    assert manager.approvers.org_admins == ["admin"]


async def old_sweep(db: DataFlow, request_id: str) -> None:
    """Time a request out as sweeps before quorums did: one UPDATE left a token as head."""
    row = await db.get(REQUESTS, request_id)
    assert row is not None
    token, now = f"{SWEPT}{uuid.uuid4().hex}", utcnow()
    details = {"deadline_at": row["deadline_at"].isoformat(), "sweep": token}
    seq = row["audit_seq"] + 1
    event = make_event(request_id, seq, "timed_out", "system", now, details, row["audit_head"])
    values = {"status": "timeout", "approved_at": now, "audit_seq": seq, "audit_head": token}
    assert await db.update_where(REQUESTS, {"id": request_id}, values) == 1
    await db.insert(AUDIT, audit_row(event, canonical(event.details)))


async def test_chains_of_old_sweeps_verify_and_take_changes(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    for i in range(4):
        await storage.save(make_request(id=f"s{i}", deadline_at=past))
        await old_sweep(db, f"s{i}")
    events = await storage.events("s0")
    assert [e.event for e in events] == ["requested", "timed_out"]
    assert (await storage.verify_audit()).ok
    # Changes after an old sweep chain onto its timed_out event.
    swept = await storage.load("s1")
    assert swept is not None and swept.audit_head == (await storage.events("s1"))[-1].hash
    swept.approval_reason = "reviewed later"
    await storage.update(swept)
    assert await storage.delete("s2")
    assert (await storage.verify_audit()).ok
    assert [e.event for e in await storage.events("s1")] == ["requested", "timed_out", "updated"]
    # A forged head, or a removed timed_out event, is caught.
    await db.update_where(REQUESTS, {"id": "s3"}, {"audit_head": "swept:forged"})
    await db.delete_where(AUDIT, {"request_id": "s0", "seq": 1})
    problems = {(p.request_id, p.message) for p in (await storage.verify_audit()).problems}
    assert problems == {
        ("s3", "latest event does not match the request row"),
        ("s0", "events after seq 0 are missing"),
    }


async def test_a_sweep_batch_that_lost_a_race_runs_again_and_counts_once(
    any_manager: ExternalAgentApprovalManager,
    make_request: MakeRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_deadlines, "_SWEEP_PAGE", 2)
    past = utcnow() - timedelta(minutes=1)
    store = any_manager._store
    for i in range(5):
        await store.save(make_request(id=f"late-{i}", deadline_at=past))
    # The first batch loses twice (a deadlock victim, rolled back), then commits.
    any_manager._store = FlakyStore(store, [ConcurrencyError("deadlock")] * 2)
    any_manager.retry_policy = RetryPolicy(attempts=3, base_delay=0)
    assert await any_manager.timeout_pending_approvals() == 5
    assert [e.event for e in await store.events("late-0")] == ["requested", "timed_out"]
    await store.save(make_request(id="late-again", deadline_at=past))
    any_manager._store = FlakyStore(store, [ConcurrencyError("deadlock")])
    any_manager.retry_policy = RetryPolicy(attempts=1)
    with pytest.raises(ConcurrencyError):
        await any_manager.timeout_pending_approvals()


async def test_a_sweep_that_finds_its_batch_taken_counts_nothing(
    store: Store, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    await store.save(make_request(id="t", deadline_at=past))
    stale = await store.overdue(utcnow())  # another sweeper's batch, read before
    assert await sweep(store) == 1
    assert await store.append_many([policy.on_deadline(stale[0], utcnow())]) == [False]
    assert [e.event for e in await store.events("t")] == ["requested", "timed_out"]


async def test_update_and_agent_listing(store: Store, make_request: MakeRequest) -> None:
    await store.save(make_request(id="u1"))
    await store.save(make_request(id="u2", external_agent_id="agent-2"))
    request = await store.load("u1")
    assert request is not None
    request.status, request.approved_by = APPROVED, "lead-456"
    await store.update(request)
    request.approval_reason = "edited"
    await store.update(request)
    assert [e.event for e in await store.events("u1")] == ["requested", "approved", "updated"]
    assert await store.list_pending_for_agent("agent-1") == []
    assert [r.id for r in await store.list_pending_for_agent("agent-2")] == ["u2"]
    with pytest.raises(ApprovalNotFoundError):
        await store.update(make_request(id="missing"))
    assert (await store.verify_audit()).ok


async def test_statuses_may_be_given_by_value(store: Store, make_request: MakeRequest) -> None:
    await store.save(make_request(id="v", approvers=["lead"]))
    assert await store.count_by_status("pending") == 1  # type: ignore[arg-type]
    assert [r.id for r in await store.list_by_status("pending")] == ["v"]  # type: ignore[arg-type]
    assert [r.id for r in await store.list_by_approver("lead", "pending")] == ["v"]  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown approval status"):
        await store.count_by_status("maybe")  # type: ignore[arg-type]


async def test_a_vote_that_committed_before_its_error_counts_once(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    class CommitsThenFails(FlakyStore):
        async def append(self, change: Any) -> bool:
            done = bool(await self.inner.append(change))
            if self.failures:  # committed, but the caller hears an error: it retries
                raise self.failures.pop(0)
            return done

    any_manager.add_requirement("agent-2", custom("lead-456", "lead-789"))
    request_id = await any_manager.request_approval("agent-2", "user-1", {})
    any_manager._store = CommitsThenFails(any_manager._store, [ConcurrencyError("lost")])
    voted = await any_manager.approve_request(request_id, "lead-456")
    assert voted.status is APPROVED and [v.approver_id for v in voted.votes] == ["lead-456"]
    assert [e.event for e in await any_manager.get_audit_trail(request_id)] == [
        "requested",
        "approved",
    ]


async def test_a_vote_row_that_landed_meanwhile_is_judged_again(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    request_id = await _flaky_manager(any_manager, [DuplicateKeyError("vote exists")])
    voted = await any_manager.approve_request(request_id, "lead-456")
    assert voted.status is APPROVED
