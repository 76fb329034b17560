"""Contract shared by the database storage and the in-memory store, and race handling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from gov_helpers import custom

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
)

MakeRequest = Callable[..., ExternalAgentApprovalRequest]
PENDING, APPROVED, TIMEOUT = ApprovalStatus.PENDING, ApprovalStatus.APPROVED, ApprovalStatus.TIMEOUT
Store = ExternalAgentApprovalStorage | InMemoryApprovalStore


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


async def test_decide_preconditions(store: Store, make_request: MakeRequest) -> None:
    now = utcnow()
    await store.save(make_request(id="open", deadline_at=None))
    await store.save(make_request(id="late", deadline_at=now - timedelta(seconds=1)))

    async def decide(request_id: str, **kw: Any) -> bool:
        args: dict[str, Any] = {"from_status": PENDING, "to_status": APPROVED, "actor": "lead-456"}
        return await store.decide(request_id, **{**args, **kw})

    assert not await decide("missing")
    assert not await decide("open", actor="stranger", require_approver=True)
    assert not await decide("open", to_status=TIMEOUT, overdue_at=now)  # no deadline: never overdue
    assert not await decide("late", before_deadline=now)
    assert await decide("open", require_approver=True, before_deadline=now)
    assert not await decide("open")  # no longer pending
    assert await decide("late", to_status=TIMEOUT, actor="system", overdue_at=utcnow())
    late = await store.load("late")
    assert late is not None and (late.status, late.approved_by) == (TIMEOUT, None)


async def test_sweep_in_small_batches(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    for i in range(5):
        await storage.save(make_request(id=f"o{i}", deadline_at=past))
    assert await storage.timeout_overdue(batch_size=2) == 5
    assert await storage.count_by_status(TIMEOUT) == 5
    assert await storage.timeout_overdue(batch_size=2) == 0


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
        lambda: other.decide("r", from_status=PENDING, to_status=APPROVED, actor="x"),
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
        lambda: storage.decide("r", from_status=PENDING, to_status=APPROVED, actor="x"),
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
    """Wraps a store; its first ``decide`` calls fail as given, then it delegates."""

    def __init__(self, inner: Any, failures: list[Any]) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def timeout_overdue(self, *args: Any, **kwargs: Any) -> int:
        if self.failures:
            raise self.failures.pop(0)
        return int(await self.inner.timeout_overdue(*args, **kwargs))

    async def decide(self, *args: Any, **kwargs: Any) -> bool:
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return bool(failure)
        return bool(await self.inner.decide(*args, **kwargs))


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
    request_id = await _flaky_manager(any_manager, [False] * 3)
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


async def test_swept_requests_keep_a_verifiable_chain(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    for i in range(4):
        await storage.save(make_request(id=f"s{i}", deadline_at=past))
    assert await storage.timeout_overdue() == 4
    events = await storage.events("s0")
    assert [e.event for e in events] == ["requested", "timed_out"]
    assert events[1].details["sweep"].startswith("swept:")
    assert (await storage.verify_audit()).ok
    # Changes after a sweep chain onto the timed_out event.
    swept = await storage.load("s1")
    assert swept is not None
    swept.approval_reason = "reviewed later"
    await storage.update(swept)
    assert await storage.delete("s2")
    assert (await storage.verify_audit()).ok
    assert [e.event for e in await storage.events("s1")] == ["requested", "timed_out", "updated"]
    # A forged head, or a removed timed_out event, is caught.
    await db.update_where("ApprovalRequestRecord", {"id": "s3"}, {"audit_head": "swept:forged"})
    await db.delete_where("ApprovalAuditRecord", {"request_id": "s0", "seq": 1})
    problems = {(p.request_id, p.message) for p in (await storage.verify_audit()).problems}
    assert problems == {
        ("s3", "latest event does not match the request row"),
        ("s0", "events after seq 0 are missing"),
    }


async def test_sweeps_run_a_batch_that_lost_a_race_again_and_count_it_once(
    storage: ExternalAgentApprovalStorage, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    for i in range(5):
        await storage.save(make_request(id=f"late-{i}", deadline_at=past))
    original, calls = storage._expire, []

    async def loses_twice(rows: Any, now: Any) -> int:
        calls.append(len(rows))
        if len(calls) in (2, 3):  # the second batch, twice: a deadlock victim, rolled back
            raise ConcurrencyError("deadlock")
        return int(await original(rows, now))

    storage._expire = loses_twice  # type: ignore[method-assign]
    retry = RetryPolicy(attempts=3, base_delay=0)
    assert await storage.timeout_overdue(utcnow(), batch_size=2, retry=retry) == 5
    assert calls == [2, 2, 2, 2, 1]  # the second batch ran three times, counted once
    await storage.save(make_request(id="late-again", deadline_at=past))
    calls[:] = [0]  # the next call is the second: it loses, and one try is all it gets
    with pytest.raises(ConcurrencyError):
        await storage.timeout_overdue(utcnow(), retry=RetryPolicy(attempts=1))


async def test_the_manager_sweeps_with_its_retry_policy(
    any_manager: ExternalAgentApprovalManager,
) -> None:
    seen: list[Any] = []
    inner = any_manager._store

    class Recording(FlakyStore):
        async def timeout_overdue(self, *args: Any, **kwargs: Any) -> int:
            seen.append(kwargs.get("retry"))
            return int(await inner.timeout_overdue(*args, **kwargs))

    any_manager._store = Recording(inner, [])
    assert await any_manager.timeout_pending_approvals() == 0
    assert seen == [any_manager.retry_policy]


async def test_a_sweep_that_finds_its_batch_taken_counts_nothing(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    past = utcnow() - timedelta(minutes=1)
    await storage.save(make_request(id="t", deadline_at=past))
    stale = await db.select("ApprovalRequestRecord", {"id": "t"})
    assert await storage.timeout_overdue() == 1
    assert await storage._expire(stale, utcnow()) == 0  # another sweeper's batch, read before
    assert [e.event for e in await storage.events("t")] == ["requested", "timed_out"]


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
