"""The audit trail seals the request row: a row edited behind the storage's back is caught.

Each sealed column is edited in plain SQL (past DataFlow's models) on every
database; verify must name the request and the field, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from gov_helpers import custom, expire, sweep, vote

from dataflow import DataFlow
from dataflow.models import Kind
from dataflow.values import utcnow
from kaizen import service
from kaizen.cli import main
from kaizen.governance import (
    ApprovalStatus,
    AuditEvent,
    AuditProblem,
    AuditReport,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
    Vote,
)
from kaizen.governance._rows import content
from kaizen.governance._schema import REQUEST_TABLE, audit_row, request_row
from kaizen.governance._seal import SEALED, differences, fold
from kaizen.governance.audit import GENESIS, canonical, make_event, verify_chain

MakeRequest = Callable[..., ExternalAgentApprovalRequest]
Store = ExternalAgentApprovalStorage | InMemoryApprovalStore
PENDING = ApprovalStatus.PENDING
AUDIT = "ApprovalAuditRecord"
REQUESTS = "ApprovalRequestRecord"
VOTES = "ApprovalVoteRecord"
LONG_AGO = datetime(2001, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)
STATES = ["pending", "approved", "rejected", "timed_out", "timed_out_by_decide", "updated"]
#: Sealed field -> its column (the frozen policy's fields live in one JSON column).
COLUMNS = {
    **{name: name for name in SEALED},
    "approvers": "approvers_json",
    "request_metadata": "request_metadata_json",
    "approved_metadata": "approved_metadata_json",
}
POLICY = ("escalate_to", "timeout_seconds", "excluded_approvers")
#: Sealed fields of the request row (the votes are rows of their own table).
ROW_SEALED = tuple(f for f in SEALED if f != "votes")
_MARKS = {"sqlite": ("?", "?"), "postgresql": ("$1", "$2"), "mysql": ("%s", "%s")}


def forged(field: str, state: str) -> Any:
    """A value of ``field`` that differs from what a request in ``state`` holds."""
    if field == "status":
        return ApprovalStatus.APPROVED if state == "pending" else ApprovalStatus.PENDING
    return {
        "approvers": ["mallory"],
        "request_metadata": {"cost": 0.5},
        "approved_metadata": {"cost": 0.5},
        "deadline_at": LONG_AGO,
        "approved_at": LONG_AGO,
        "external_agent_id": "agent-evil",
        "quorum": 3,
        "escalations": 2,
        "escalate_to": ["mallory"],
        "excluded_approvers": ["mallory"],
        "timeout_seconds": 1.5,
        "votes": [Vote("mallory", "approve", LONG_AGO)],
    }.get(field, "mallory")


async def sql_set(db: DataFlow, request_id: str, column: str, value: Any) -> None:
    """``UPDATE <request table> SET column = value WHERE id = ...`` in plain, parameterized SQL.

    A field of the frozen policy is set inside the ``policy_json`` column.
    """
    if column in POLICY:
        row = await db.get(REQUESTS, request_id)
        assert row is not None
        value, column = {**(row["policy_json"] or {}), column: value}, "policy_json"
    if isinstance(value, ApprovalStatus):
        value = value.value
    elif isinstance(value, list | dict):
        value = json.dumps(value)
    elif isinstance(value, datetime):
        encode = db.dialect.encoder(Kind.DATETIME)
        value = encode(value) if encode is not None else value
    first, second = _MARKS[db.dialect_name]
    sql = f"UPDATE {REQUEST_TABLE} SET {column} = {first} WHERE id = {second}"
    backend = await db._backend()
    changed = await backend.run(lambda c: c.execute(sql, [value, request_id]), atomic=False)
    assert changed == 1


async def into_state(store: Store, make_request: MakeRequest, state: str, n: int) -> list[str]:
    """Save ``n`` requests and bring each into ``state`` through the store's own methods."""
    now = utcnow()
    overdue = state.startswith("timed_out")
    deadline = now - timedelta(minutes=1) if overdue else now + timedelta(hours=1)
    ids = [await store.save(make_request(deadline_at=deadline)) for _ in range(n)]
    if state == "timed_out":
        assert await sweep(store) == n
    for request_id in ids:
        await _decide(store, request_id, state)
    return ids


async def _decide(store: Store, request_id: str, state: str) -> None:
    if state == "approved":
        assert await vote(store, request_id, "lead-456")
    elif state == "rejected":
        assert await vote(store, request_id, "lead-456", "reject", comment="too expensive")
    elif state == "timed_out_by_decide":
        assert await expire(store, request_id)
    elif state == "updated":
        request = await store.load(request_id)
        assert request is not None
        request.status = ApprovalStatus.APPROVED
        request.approved_by = "lead-456"
        request.approved_at = utcnow()
        request.approval_reason = "approved by hand"
        await store.update(request)


def seal_problem(request_id: str, *fields: str) -> AuditProblem:
    message = f"row differs from its audit trail: {', '.join(fields)}"
    return AuditProblem(request_id, None, message, fields)


# -- every sealed column, every state, every database --------------------------


@pytest.mark.parametrize("state", STATES)
async def test_each_sealed_column_edited_in_sql_is_named(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest, state: str
) -> None:
    ids = await into_state(storage, make_request, state, len(ROW_SEALED))
    untouched = await storage.save(make_request())
    assert (await storage.verify_audit()).ok
    for request_id, field in zip(ids, ROW_SEALED, strict=True):
        await sql_set(db, request_id, COLUMNS[field], forged(field, state))
    report = await storage.verify_audit()
    expected = [seal_problem(rid, field) for rid, field in zip(ids, ROW_SEALED, strict=True)]
    assert sorted(report.problems, key=lambda p: p.request_id) == sorted(
        expected, key=lambda p: p.request_id
    )
    assert report.requests == len(ROW_SEALED) + 1
    for problem in expected:
        assert (await storage.verify_audit(problem.request_id)).problems == [problem]
    assert (await storage.verify_audit(untouched)).ok


async def test_votes_edited_removed_or_forged_in_sql_are_named(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    requests = [make_request(quorum=2, approvers=["lead-456", "lead-789"]) for _ in range(4)]
    for request in requests:
        await storage.save(request)
        assert await vote(storage, request.id, "lead-456", comment="fine")
    edited, removed, forged_vote, untouched = (r.id for r in requests)
    assert (await storage.verify_audit()).ok
    await db.update_where(VOTES, {"request_id": edited}, {"comment": "changed later"})
    assert await db.delete_where(VOTES, {"request_id": removed}) == 1
    [row] = await db.select(VOTES, {"request_id": forged_vote})
    row = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
    await db.insert(
        VOTES,
        {**row, "id": "f" * 64, "seq": 9, "approver_id": "lead-789", "counts_for": "lead-789"},
    )
    report = await storage.verify_audit()
    assert sorted(report.problems, key=lambda p: p.request_id) == sorted(
        (seal_problem(r, "votes") for r in (edited, removed, forged_vote)),
        key=lambda p: p.request_id,
    )
    assert (await storage.verify_audit(untouched)).ok


async def test_cleared_decision_columns_are_named_together(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    [request_id] = await into_state(storage, make_request, "rejected", 1)
    for column in ("approved_by", "approved_at", "rejection_reason"):
        await sql_set(db, request_id, column, None)
    report = await storage.verify_audit()
    assert report.problems == [
        seal_problem(request_id, "approved_by", "approved_at", "rejection_reason")
    ]
    assert report.problems[0].message.endswith("approved_by, approved_at, rejection_reason")


async def test_a_value_written_back_unchanged_still_verifies(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    # Equal values compare equal however they are written: offsets, key order, -0.0.
    request = make_request(
        request_metadata={"b": [1, -0.0, {"z": None}], "a": "é"},
        deadline_at=(utcnow() + timedelta(hours=1)).astimezone(timezone(timedelta(hours=5))),
    )
    await storage.save(request)
    assert await vote(storage, request.id, "lead-456")
    stored = await storage.load(request.id)
    assert stored is not None and stored.deadline_at is not None
    await sql_set(db, request.id, "request_metadata_json", {"a": "é", "b": [1, 0.0, {"z": None}]})
    await sql_set(db, request.id, "deadline_at", stored.deadline_at)
    assert (await storage.verify_audit()).ok


async def test_deleted_and_updated_requests_verify(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    [kept, gone] = await into_state(storage, make_request, "approved", 2)
    request = await storage.load(kept)
    assert request is not None
    request.request_metadata = {"cost": 99.5, "note": "re-priced"}
    request.rejection_reason = "kept for the record"
    await storage.update(request)
    row = await db.get(REQUESTS, gone)
    assert await storage.delete(gone)
    report = await storage.verify_audit()
    assert report.ok and report.requests == 2
    # A row put back under its 'deleted' head is no longer what the trail says.
    [deleted] = [e for e in await storage.events(gone) if e.event == "deleted"]
    assert row is not None
    put_back = {k: v for k, v in row.items() if k not in ("created_at", "updated_at")}
    await db.insert(REQUESTS, {**put_back, "audit_seq": deleted.seq, "audit_head": deleted.hash})
    assert [(p.request_id, p.message) for p in (await storage.verify_audit()).problems] == [
        (gone, "request row exists but its trail ends with 'deleted'")
    ]


async def test_an_edited_event_is_reported_not_the_row(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    # The row is compared only with an intact chain: the edited event is the problem.
    [request_id] = await into_state(storage, make_request, "approved", 1)
    await db.update_where(AUDIT, {"request_id": request_id, "seq": 1}, {"actor": "mallory"})
    await sql_set(db, request_id, "approved_by", "mallory")
    [problem] = (await storage.verify_audit()).problems
    assert (problem.seq, problem.fields) == (1, ()) and "modified" in problem.message


# -- chains written before the row was sealed -------------------------------------


#: What ``requested``/``updated`` events held before ``approved_at`` and the policy were recorded.
OLD_CONTENT = (
    "external_agent_id",
    "requested_by",
    "approvers",
    "status",
    "approval_reason",
    "request_metadata",
    "deadline_at",
    "approved_by",
    "rejection_reason",
)


def _old_content(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """An event's content as the code before the row was sealed wrote it."""
    keys = {"metadata" if f == "request_metadata" else f for f in OLD_CONTENT}
    return {k: v for k, v in content(request).items() if k in keys}


async def old_save(db: DataFlow, request: ExternalAgentApprovalRequest) -> str:
    """Save ``request`` as the code before this change did."""
    details = _old_content(request)
    event = make_event(request.id, 0, "requested", request.requested_by, utcnow(), details, GENESIS)
    row = {"id": request.id, **request_row(request), "audit_seq": 0, "audit_head": event.hash}
    await db.insert(REQUESTS, row)
    await db.insert(AUDIT, audit_row(event, canonical(event.details)))
    return request.id


async def old_update(db: DataFlow, request: ExternalAgentApprovalRequest) -> None:
    """``update()`` as the code before this change did it (the status unchanged)."""
    row = await db.get(REQUESTS, request.id)
    assert row is not None
    seq, prev = row["audit_seq"] + 1, row["audit_head"]
    event = make_event(request.id, seq, "updated", "system", utcnow(), _old_content(request), prev)
    values = {**request_row(request), "audit_seq": seq, "audit_head": event.hash}
    assert await db.update_where(REQUESTS, {"id": request.id}, values) == 1
    await db.insert(AUDIT, audit_row(event, canonical(event.details)))


async def test_old_chains_verify_and_seal_what_they_carry(
    storage: ExternalAgentApprovalStorage, db: DataFlow, make_request: MakeRequest
) -> None:
    carried = [f for f in ROW_SEALED if f in OLD_CONTENT]
    ids = [await old_save(db, make_request()) for _ in carried]
    unsealed = await old_save(db, make_request())
    updated = make_request(approval_reason="first")
    await old_save(db, updated)
    updated.approval_reason = "second"
    await old_update(db, updated)
    decided = await old_save(db, make_request())
    assert await vote(storage, decided, "lead-456")
    assert (await storage.verify_audit()).ok
    for request_id, field in zip(ids, carried, strict=True):
        await sql_set(db, request_id, COLUMNS[field], forged(field, "pending"))
    # An old event does not record approved_at: unsealed until a decision sets it.
    await sql_set(db, unsealed, "approved_at", LONG_AGO)
    await sql_set(db, updated.id, "approved_at", LONG_AGO)
    await sql_set(db, decided, "approved_at", LONG_AGO)
    # The policy is: old requests had quorum 1, no escalation, no edited metadata.
    await sql_set(db, unsealed, "quorum", 3)
    await sql_set(db, unsealed, "escalate_to", ["mallory"])
    await sql_set(db, decided, "approved_metadata_json", {"cost": 10**6})
    problems = (await storage.verify_audit()).problems
    expected = [seal_problem(r, f) for r, f in zip(ids, carried, strict=True)]
    expected.append(seal_problem(unsealed, "quorum", "escalate_to"))
    expected.append(seal_problem(decided, "approved_at", "approved_metadata"))
    assert sorted(problems, key=lambda p: p.request_id) == sorted(
        expected, key=lambda p: p.request_id
    )


# -- the in-memory store ------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
async def test_in_memory_records_are_sealed_too(make_request: MakeRequest, state: str) -> None:
    store = InMemoryApprovalStore()
    ids = await into_state(store, make_request, state, len(SEALED))
    assert (await store.verify_audit()).ok
    for request_id, field in zip(ids, SEALED, strict=True):
        setattr(store._requests[request_id], field, forged(field, state))
    expected = [seal_problem(rid, field) for rid, field in zip(ids, SEALED, strict=True)]
    assert (await store.verify_audit()).problems == expected
    assert (await store.verify_audit(ids[0])).problems == expected[:1]


async def test_in_memory_delete_update_and_manager_verify() -> None:
    manager = ExternalAgentApprovalManager()
    manager.add_requirement("agent-1", custom("lead-456"))
    first = await manager.request_approval("agent-1", "user-1", {"cost": 2.5})
    second = await manager.request_approval("agent-1", "user-1", {"cost": 3.5})
    await manager.reject_request(first, "lead-456", "no")
    store = manager._store
    assert isinstance(store, InMemoryApprovalStore)
    request = await store.load(first)
    assert request is not None
    request.approval_reason = "looked at again"
    await store.update(request)
    assert await store.delete(second)
    assert (await manager.verify_audit()).ok
    store._requests[first].rejection_reason = "yes"
    assert (await manager.verify_audit()).problems == [seal_problem(first, "rejection_reason")]


# -- the fold itself ------------------------------------------------------------------


#: What content events written before quorums seal of the policy (and a row holds).
OLD_POLICY: dict[str, Any] = {
    "quorum": 1,
    "escalate_to": [],
    "escalations": 0,
    "timeout_seconds": None,
    "excluded_approvers": [],
    "approved_metadata": None,
}


def _event(seq: int, name: str, details: dict[str, Any], actor: str = "lead") -> AuditEvent:
    return make_event("r", seq, name, actor, LONG_AGO, details, GENESIS)


def test_the_fold_of_each_kind_of_event() -> None:
    requested = _event(0, "requested", {"status": "pending", "approved_at": None})
    assert fold([requested]) == {
        "status": "pending",
        "approved_at": None,
        **OLD_POLICY,
        "votes": [],
    }
    # An event it does not know changes nothing; an old decision sets what it decides.
    unknown = _event(1, "noted", {"vote": "yes"})
    approved = _event(2, "approved", {"reason": "fine"})
    assert fold([requested, unknown, approved]) == {
        "status": "approved",
        "approved_at": LONG_AGO,
        "approved_by": "lead",
        "rejection_reason": "fine",
        **OLD_POLICY,
        "votes": [],
    }
    assert fold([requested, _event(1, "deleted", {})]) is None
    assert fold([]) == {"votes": []}
    # A change says what it sets and which vote it records; an update keeps the votes.
    vote_json = {"approver_id": "a", "decision": "approve", "comment": None}
    voted = _event(1, "voted", {"set": {}, "vote": {**vote_json, "metadata": {"n": 1}}})
    escalated = _event(2, "escalated", {"set": {"approvers": ["a", "b"], "escalations": 1}})
    updated = _event(3, "updated", {"status": "pending"})
    seal = fold([requested, voted, escalated, updated])
    assert seal is not None and seal["status"] == "pending" and "approvers" not in seal
    assert seal["votes"] == [("a", "approve", None, None, '{"n":1}', LONG_AGO)]
    seal = fold([requested, voted, escalated])
    assert seal is not None and (seal["approvers"], seal["escalations"]) == (["a", "b"], 1)


def test_values_compare_canonically() -> None:
    seal = fold([_event(0, "requested", {"deadline_at": "2001-01-01T13:30:15.123456+01:00"})])
    assert seal is not None
    assert differences(seal, {**OLD_POLICY, "deadline_at": LONG_AGO}) == ()
    naive = LONG_AGO.replace(tzinfo=None)
    assert differences(seal, {**OLD_POLICY, "deadline_at": naive}) == ("deadline_at",)
    assert differences(seal, {**OLD_POLICY, "deadline_at": "not a time"}) == ("deadline_at",)
    assert differences(seal, {"deadline_at": LONG_AGO}) == (  # a row without a policy
        "quorum",
        "escalate_to",
        "escalations",
        "excluded_approvers",
    )
    seal = fold([_event(0, "requested", {"metadata": {"n": 1.5}, "approvers": ["a"]})])
    assert seal is not None
    row = {**OLD_POLICY, "request_metadata": {"n": 1.5}, "approvers": ("a",)}
    assert differences(seal, row) == ()
    nan = {**row, "request_metadata": {"n": float("nan")}}
    assert differences(seal, nan) == ("request_metadata",)


def test_verify_chain_without_a_row_checks_the_chain_only() -> None:
    event = _event(0, "requested", {"status": "pending"})
    report = AuditReport()
    verify_chain("r", [(event, canonical(event.details))], (0, event.hash), report)
    assert report.ok
    verify_chain("r", [(event, canonical(event.details))], (0, event.hash), report, OLD_POLICY)
    assert report.problems == [seal_problem("r", "status")]


# -- the command ----------------------------------------------------------------------


def test_cli_audit_verify_names_the_request_and_field(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed() -> str:
        async with service.Kaizen.open(db_url) as k:
            k.approvals.add_requirement("agent-a", custom("lead"))
            request_id = await k.approvals.request_approval("agent-a", "user-1", {"cost": 1})
            await k.approvals.approve_request(request_id, "lead")
            return request_id

    async def tamper(request_id: str) -> None:
        async with service.Kaizen.open(db_url) as k:
            await sql_set(k.db, request_id, "approved_by", "mallory")

    request_id = asyncio.run(seed())
    assert main(["--db", db_url, "approvals", "audit", "verify"]) == 0
    capsys.readouterr()
    asyncio.run(tamper(request_id))
    assert main(["--db", db_url, "approvals", "audit", "verify"]) == 8
    out = capsys.readouterr().out
    assert "audit FAILED: 1 problem(s)" in out
    [line] = [line for line in out.splitlines() if request_id in line]
    assert line.endswith("row differs from its audit trail: approved_by")
    assert main(["--db", db_url, "approvals", "audit", "verify", "--json"]) == 8
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"] == [
        {
            "request_id": request_id,
            "seq": None,
            "message": "row differs from its audit trail: approved_by",
            "fields": ["approved_by"],
        }
    ]
