"""Approval policies on every database and in memory: quorum with veto, edit-and-approve,
delegation, escalation, stored policies."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest

from dataflow import DataFlow, ValidationError
from dataflow.values import utcnow
from kaizen.governance import (
    AlreadyDecidedError,
    AlreadyVotedError,
    ApprovalConfigurationError,
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStatus,
    Delegation,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
    NotAuthorizedError,
    SelfDecisionError,
    policy,
)
from kaizen.governance.models import MAX_REASON
from kaizen.governance.policies import requirement_to_json

PENDING, APPROVED = ApprovalStatus.PENDING, ApprovalStatus.APPROVED
REJECTED, TIMEOUT = ApprovalStatus.REJECTED, ApprovalStatus.TIMEOUT


@pytest.fixture(params=["storage", "memory"])
def store(request: pytest.FixtureRequest, db: DataFlow) -> Any:
    """The database storage on each database, and the in-memory store."""
    return (
        ExternalAgentApprovalStorage(db) if request.param == "storage" else InMemoryApprovalStore()
    )


def manager_on(store: Any) -> ExternalAgentApprovalManager:
    """Another app instance on the same store: it shares nothing but the store."""
    return ExternalAgentApprovalManager(storage_backend=store)


async def events(manager: ExternalAgentApprovalManager, request_id: str) -> list[str]:
    return [e.event for e in await manager.get_audit_trail(request_id)]


async def overdue(manager: ExternalAgentApprovalManager, request_id: str) -> None:
    """Wait until the request's deadline has passed."""
    request = await manager.get_request(request_id)
    assert request is not None and request.deadline_at is not None
    await asyncio.sleep(max(0.0, (request.deadline_at - utcnow()).total_seconds()) + 0.02)


# -- quorum with veto ------------------------------------------------------------------


async def test_a_quorum_needs_distinct_approvals_and_decides_once(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo", "cy"], quorum=2)
    rid = await m.request_approval("deploy", "dev", {"env": "prod"})
    first = await m.approve_request(rid, "ana", comment="looks right")
    assert first.status is PENDING and str(policy.progress(first)) == "1 of 2"
    with pytest.raises(AlreadyVotedError) as again:
        await m.approve_request(rid, "ana")
    assert isinstance(again.value, AlreadyDecidedError) and again.value.status is PENDING
    decided = await m.approve_request(rid, "bo")
    assert (decided.status, decided.approved_by) == (APPROVED, "bo")
    with pytest.raises(AlreadyDecidedError) as late:
        await m.approve_request(rid, "cy")
    assert not isinstance(late.value, AlreadyVotedError) and late.value.status is APPROVED
    assert "approved" in str(late.value)
    stored = await m.get_request(rid)
    assert stored is not None and stored.status is APPROVED
    assert [(v.approver_id, v.decision, v.comment) for v in stored.votes] == [
        ("ana", "approve", "looks right"),
        ("bo", "approve", None),
    ]
    assert stored.votes[0].at <= stored.votes[1].at == stored.approved_at
    assert await events(m, rid) == ["requested", "voted", "approved"]
    voted = (await m.get_audit_trail(rid))[1]
    assert (voted.details["approvals"], voted.details["quorum"]) == (1, 2)
    assert (await m.verify_audit(rid)).ok


async def test_any_eligible_rejection_is_a_veto(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo", "cy"], quorum=2)
    rid = await m.request_approval("deploy", "dev", {})
    await m.approve_request(rid, "ana")
    rejected = await m.reject_request(rid, "bo", "not on a Friday")
    assert (rejected.status, rejected.approved_by, rejected.rejection_reason) == (
        REJECTED,
        "bo",
        "not on a Friday",
    )
    with pytest.raises(AlreadyDecidedError):
        await m.approve_request(rid, "cy")
    stored = await m.get_request(rid)
    assert stored is not None
    assert [(v.approver_id, v.decision) for v in stored.votes] == [
        ("ana", "approve"),
        ("bo", "reject"),
    ]
    assert await events(m, rid) == ["requested", "voted", "rejected"]
    assert (await m.verify_audit()).ok


async def test_the_policy_in_force_is_frozen_into_the_request(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo"], quorum=2)
    rid = await m.request_approval("deploy", "dev", {})
    m.set_approvers("deploy", ["ana", "bo"], quorum=1)  # later requests only
    assert (await m.approve_request(rid, "ana")).status is PENDING
    later = await m.request_approval("deploy", "dev", {})
    assert (await m.approve_request(later, "ana")).status is APPROVED


@pytest.mark.parametrize(
    ("approvers", "quorum", "problem"),
    [
        (["ana", "bo"], 3, ApprovalConfigurationError),
        (["ana", "dev"], 2, ApprovalConfigurationError),  # the requester cannot vote
        (["ana"], 0, ValidationError),
        (["ana"], True, ValidationError),
        (["ana"], 1.5, ValidationError),
    ],
)
async def test_a_quorum_nobody_could_reach_is_refused(
    store: Any, approvers: list[str], quorum: Any, problem: type[Exception]
) -> None:
    m = manager_on(store)
    with pytest.raises(problem):
        m.set_approvers("deploy", approvers, quorum=quorum)
        await m.request_approval("deploy", "dev", {})
    assert await m.list_requests() == []


# -- edit-and-approve --------------------------------------------------------------------


async def test_approving_with_changed_arguments_keeps_the_original(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana"])
    rid = await m.request_approval("deploy", "dev", {"replicas": 10, "env": "prod", "tag": "x"})
    edited = {"replicas": 3, "env": "prod", "region": "eu"}
    done = await m.approve_request(rid, "ana", metadata=edited, comment="fewer replicas")
    assert done.status is APPROVED and done.approved_metadata == edited
    stored = await m.get_request(rid)
    assert stored is not None
    assert stored.request_metadata == {"replicas": 10, "env": "prod", "tag": "x"}
    assert stored.approved_metadata == edited and stored.votes[0].metadata == edited
    approved = (await m.get_audit_trail(rid))[-1]
    assert approved.details["diff"] == {
        "changed": {"replicas": [10, 3]},
        "added": {"region": "eu"},
        "removed": ["tag"],
    }
    assert (await m.verify_audit(rid)).ok
    # Unchanged arguments are no edit (as JSON: 1 is 1.0): approved_metadata stays None.
    rid = await m.request_approval("deploy", "dev", {"n": 1.0, "b": [2.0, True]})
    same = {"b": [2, True], "n": 1}
    assert (await m.approve_request(rid, "ana", metadata=same)).approved_metadata is None
    # But true is not 1.
    rid = await m.request_approval("deploy", "dev", {"flag": 1})
    done = await m.approve_request(rid, "ana", metadata={"flag": True})
    assert done.approved_metadata == {"flag": True}
    diff = (await m.get_audit_trail(rid))[-1].details["diff"]
    assert diff["changed"] == {"flag": [1, True]}


async def test_a_quorum_counts_approvals_of_one_version(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo", "cy"], quorum=2)
    rid = await m.request_approval("deploy", "dev", {"replicas": 10})
    await m.approve_request(rid, "ana", metadata={"replicas": 3.0})
    mixed = await m.approve_request(rid, "bo")  # as requested: another version
    assert mixed.status is PENDING and policy.progress(mixed).approvals == 1
    assert policy.progress(mixed).metadata is None  # the latest wins a tie
    done = await m.approve_request(rid, "cy", metadata={"replicas": 3})
    assert done.status is APPROVED and done.approved_metadata == {"replicas": 3}
    assert (await m.verify_audit(rid)).ok


async def test_bad_metadata_and_comments_are_refused_before_anything_is_written(
    store: Any,
) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana"])
    rid = await m.request_approval("deploy", "dev", {})
    for bad in ({"metadata": ["not", "an", "object"]}, {"metadata": {"x": float("nan")}}):
        with pytest.raises(ValidationError):
            await m.approve_request(rid, "ana", **bad)
    with pytest.raises(ValidationError):
        await m.approve_request(rid, "ana", comment="x" * (MAX_REASON + 1))
    with pytest.raises(ValidationError):
        await m.approve_request(rid, "ana", comment=5)  # type: ignore[arg-type]
    assert await events(m, rid) == ["requested"]


# -- delegation ------------------------------------------------------------------------------


async def test_a_delegate_votes_for_the_delegator_on_every_instance(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo"], quorum=2)
    made = await m.delegate("bo", to="dee")
    assert (made.approver_id, made.delegate_id, made.created_by) == ("bo", "dee", "bo")
    rid = await m.request_approval("deploy", "dev", {})
    other = manager_on(store)  # never saw the delegate call
    assert [d.delegate_id for d in await other.delegations("bo")] == ["dee"]
    voted = await other.approve_request(rid, "dee")
    assert [(v.approver_id, v.on_behalf_of, v.counts_for) for v in voted.votes] == [
        ("dee", "bo", "bo")
    ]
    with pytest.raises(AlreadyVotedError, match="dee voted for them"):
        await m.approve_request(rid, "bo")
    with pytest.raises(AlreadyVotedError):
        await other.approve_request(rid, "dee")
    assert (await m.approve_request(rid, "ana")).status is APPROVED
    details = (await m.get_audit_trail(rid))[1].details
    assert details["on_behalf_of"] == "bo"
    assert details["delegation"] == {
        "created_at": made.created_at.isoformat(),
        "created_by": "bo",
        "until": None,
    }
    assert (await m.verify_audit()).ok


async def test_revoked_and_expired_delegations_are_refused(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo"])
    await m.delegate("bo", to="dee")
    await store.settings.save_delegation(
        Delegation("ana", "old", utcnow() - timedelta(seconds=1), utcnow(), "ana")
    )
    rid = await m.request_approval("deploy", "dev", {})
    assert await m.revoke_delegation("bo", to="dee") is True
    assert await m.revoke_delegation("bo", to="dee") is False
    for stranger in ("dee", "old"):
        with pytest.raises(NotAuthorizedError):
            await manager_on(store).approve_request(rid, stranger)
    assert await m.delegations() == []  # the expired one is not active
    history = await m.delegation_history("bo")
    assert [(e.event, e.actor, e.details["delegate_id"]) for e in history] == [
        ("delegated", "bo", "dee"),
        ("delegation_revoked", "bo", "dee"),
    ]


async def test_a_delegate_never_votes_twice_nor_on_their_own_request(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo", "cy"], quorum=3)
    await m.delegate("bo", to="ana")
    await m.delegate("cy", to="ana")
    rid = await m.request_approval("deploy", "dev", {})
    await m.approve_request(rid, "ana")  # for herself
    with pytest.raises(AlreadyVotedError):  # one vote per person, whoever for
        await m.approve_request(rid, "ana", on_behalf_of="bo")
    # A delegate who made the request may not vote for anyone on it.
    await m.delegate("ana", to="dev")
    own = await m.request_approval("deploy", "dev", {})
    with pytest.raises(SelfDecisionError):
        await m.approve_request(own, "dev")
    with pytest.raises(NotAuthorizedError):  # not a delegate of this one
        await m.approve_request(own, "dee", on_behalf_of="bo")


async def test_a_delegate_of_several_chooses_whom_to_vote_for(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo", "cy"], quorum=2)
    await m.delegate("bo", to="dee")
    await m.delegate("cy", to="dee")
    rid = await m.request_approval("deploy", "dev", {})
    voted = await m.approve_request(rid, "dee", on_behalf_of="cy")
    assert voted.votes[0].on_behalf_of == "cy"
    with pytest.raises(AlreadyVotedError):
        await m.approve_request(rid, "dee")  # her one vote on it is in
    # Without a choice, the first approver (in routing order) not yet voted for.
    rid = await m.request_approval("deploy", "dev", {})
    assert (await m.approve_request(rid, "dee")).votes[0].on_behalf_of == "bo"


@pytest.mark.parametrize(
    ("args", "until"),
    [
        (("ana", "ana"), None),
        (("ana", "bo"), "tomorrow"),
        (("ana", "bo"), -60),
        (("ana", " bo"), None),
    ],
)
async def test_bad_delegations_are_refused(store: Any, args: tuple[str, str], until: Any) -> None:
    m = manager_on(store)
    when = utcnow() + timedelta(seconds=until) if isinstance(until, int) else until
    with pytest.raises(ValidationError):
        await m.delegate(args[0], to=args[1], until=when)
    assert await m.delegations() == []


async def test_a_delegation_with_an_end_lasts_until_it(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana"])
    until = utcnow() + timedelta(hours=2)
    await m.delegate("ana", to="dee", until=until)
    again = await m.delegate("ana", to="dee", until=until + timedelta(hours=1))  # extends it
    [active] = await m.delegations(delegate="dee")
    assert active.until == again.until
    rid = await m.request_approval("deploy", "dev", {})
    assert (await m.approve_request(rid, "dee")).status is APPROVED


# -- escalation -----------------------------------------------------------------------------


class Inbox:
    """A control protocol that records who was told about what."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
        self.sent.append((approver_id, payload))


async def test_an_overdue_request_escalates_once_then_times_out(store: Any) -> None:
    inbox = Inbox()
    m = ExternalAgentApprovalManager(inbox, storage_backend=store)
    # Long enough that a loaded machine does not reach the escalated deadline too early.
    m.set_approvers("deploy", ["ana"], timeout_seconds=0.8, escalate_to=["boss", "ana"])
    rid = await m.request_approval("deploy", "dev", {})
    first = await m.get_request(rid)
    assert first is not None and first.escalate_to == ["boss", "ana"]
    await overdue(m, rid)
    swept = await m.sweep_overdue()
    assert (swept.escalated, swept.timed_out) == ([rid], [])
    escalated = await m.get_request(rid)
    assert escalated is not None and escalated.status is PENDING
    assert (escalated.approvers, escalated.escalations) == (["ana", "boss"], 1)
    assert escalated.deadline_at is not None and first.deadline_at is not None
    assert escalated.deadline_at > first.deadline_at
    assert [(who, p["escalated"]) for who, p in inbox.sent] == [("ana", False), ("boss", True)]
    assert (await m.sweep_overdue()).escalated == []  # once
    await overdue(m, rid)
    assert await m.timeout_pending_approvals() == 1
    assert await events(m, rid) == ["requested", "escalated", "timed_out"]
    assert (await m.get_request(rid)).status is TIMEOUT  # type: ignore[union-attr]
    assert (await m.verify_audit()).ok


async def test_a_vote_on_an_overdue_request_escalates_it_first(store: Any) -> None:
    m = manager_on(store)
    m.add_org_admin("root")
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM,
        custom_approvers=["ana"],
        approval_timeout_seconds=0.6,  # the vote must land before the escalated deadline
        escalate_to=ApprovalLevel.ADMIN,
    )
    m.add_requirement("deploy", requirement)
    rid = await m.request_approval("deploy", "dev", {})
    await overdue(m, rid)
    done = await m.approve_request(rid, "root")  # the escalated approver
    assert (done.status, done.approvers) == (APPROVED, ["ana", "root"])
    assert await events(m, rid) == ["requested", "escalated", "approved"]
    # Without escalation, a vote after the deadline finds the request timed out.
    m.set_approvers("plain", ["ana"], timeout_seconds=0.2)
    late = await m.request_approval("plain", "dev", {})
    await overdue(m, late)
    with pytest.raises(AlreadyDecidedError) as caught:
        await m.approve_request(late, "ana")
    assert caught.value.status is TIMEOUT


async def test_waiting_continues_across_an_escalation(store: Any) -> None:
    m = manager_on(store)
    # The escalated deadline is as long: ample for the boss's vote right after escalation.
    m.set_approvers("deploy", ["ana"], timeout_seconds=1.0, escalate_to=["boss"])
    rid = await m.request_approval("deploy", "dev", {})

    async def boss_approves() -> None:
        await overdue(m, rid)
        await manager_on(store).approve_request(rid, "boss")  # escalates it, then votes

    helper = asyncio.create_task(boss_approves())
    assert await m.wait_for_approval(rid, timeout=10) is True
    await helper


async def test_escalation_targets_nobody_could_vote_as_are_refused(store: Any) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana"], escalate_to=["dev"])  # only the requester
    with pytest.raises(ApprovalConfigurationError, match="escalate"):
        await m.request_approval("deploy", "dev", {})
    # A level that gives nobody (no owner configured yet) escalates nowhere: it times out.
    m.set_approvers("deploy", ["ana"], escalate_to=ApprovalLevel.OWNER)
    rid = await m.request_approval("deploy", "dev", {})
    request = await m.get_request(rid)
    assert request is not None and request.escalate_to == []
    for bad in ([], "boss", [""]):
        with pytest.raises(ValidationError):
            m.set_approvers("deploy", ["ana"], escalate_to=bad)  # type: ignore[arg-type]


# -- stored policies -------------------------------------------------------------------------


async def test_a_stored_policy_routes_every_instance(store: Any) -> None:
    admin = manager_on(store)
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM,
        custom_approvers=["ana", "bo"],
        quorum=2,
        escalate_to=["boss"],
        approval_timeout_seconds=600,
        require_for_environments=["prod"],
    )
    await admin.save_policy("deploy", requirement, actor="ops")
    app = manager_on(store)  # never configured anything
    assert await app.requirement_for("deploy") == requirement
    assert await app.load_policies() == {"deploy": requirement}
    rid = await app.request_approval("deploy", "dev", {"env": "prod"})
    request = await app.get_request(rid)
    assert request is not None
    assert (request.approvers, request.quorum, request.escalate_to) == (["ana", "bo"], 2, ["boss"])
    # A process's own requirement wins over the stored one.
    app.set_approvers("deploy", ["cy"])
    own = await app.get_request(await app.request_approval("deploy", "dev", {}))
    assert own is not None and own.approvers == ["cy"]


async def test_policy_changes_are_audited_and_spare_existing_requests(store: Any) -> None:
    m = manager_on(store)
    one = ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["ana", "bo"], quorum=2)
    await m.save_policy("deploy", one, actor="ops")
    rid = await m.request_approval("deploy", "dev", {})
    two = ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["cy"])
    await m.save_policy("deploy", two, actor="sec")
    assert await m.delete_policy("deploy", actor="ops") is True
    assert await m.delete_policy("deploy") is False
    assert await m.stored_policy("deploy") is None
    with pytest.raises(ApprovalConfigurationError, match="kaizen policies set"):
        await m.request_approval("deploy", "dev", {})
    history = await m.policy_history("deploy")
    assert [(e.event, e.actor) for e in history] == [
        ("policy_set", "ops"),
        ("policy_set", "sec"),
        ("policy_deleted", "ops"),
    ]
    assert history[0].details["before"] is None
    assert history[1].details["before"]["custom_approvers"] == ["ana", "bo"]
    assert history[1].details["after"]["custom_approvers"] == ["cy"]
    assert history[2].details["after"] is None
    assert [e.prev_hash for e in history[1:]] == [e.hash for e in history[:-1]]
    request = await m.get_request(rid)
    assert request is not None and (request.approvers, request.quorum) == (["ana", "bo"], 2)


async def test_concurrent_policy_writers_each_get_one_event(store: Any) -> None:
    managers = [manager_on(store) for _ in range(4)]
    await asyncio.gather(
        *(
            m.save_policy(
                "deploy",
                ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=[f"a{i}"]),
                actor=f"u{i}",
            )
            for i, m in enumerate(managers)
        )
    )
    history = await managers[0].policy_history("deploy")
    assert [e.seq for e in history] == [0, 1, 2, 3]
    # Each event's "before" is what the previous one stored: no write was lost.
    for prev, event in itertools.pairwise(history):
        assert event.details["before"] == prev.details["after"]


async def test_whether_approval_is_required_reads_the_stored_policy(store: Any) -> None:
    m = manager_on(store)
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM, custom_approvers=["ana"], require_for_cost_above=10.0
    )
    await m.save_policy("deploy", requirement)
    app = manager_on(store)
    assert app.determine_if_approval_required("deploy", {"cost": 50}) == (False, None)
    assert await app.approval_required("deploy", {"cost": 50}) == (True, requirement)
    assert await app.approval_required("deploy", {"cost": 5}) == (False, None)
    assert await app.approval_required("other", {"cost": 50}) == (False, None)
    with pytest.raises(ValidationError):
        await app.approval_required("deploy", ["cost"])  # type: ignore[arg-type]


async def test_stored_policies_and_delegations_are_sealed_by_their_chains(
    store: Any, db: DataFlow
) -> None:
    m = manager_on(store)
    requirement = ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["ana", "bo"])
    await m.save_policy("deploy", requirement, actor="ops")
    await m.save_policy("other", requirement, actor="ops")
    await m.delete_policy("other", actor="ops")
    await m.delegate("bo", to="dee", until=utcnow() + timedelta(days=1))
    await m.delegate("bo", to="eve")
    await m.revoke_delegation("bo", to="eve")
    report = await m.verify_audit()
    assert report.ok and report.events == 6
    # Edited behind the library's back: a policy, a delegation's end, an event.
    if isinstance(store, InMemoryApprovalStore):
        settings = store.settings
        settings._policies["deploy"]["quorum"] = 2
        [(key, found)] = settings._delegations.items()
        settings._delegations[key] = Delegation("bo", "dee", None, found.created_at, "bo")
        settings._policies["sneaky"] = dict(settings._policies["deploy"])
    else:
        [row] = await db.select("ApprovalPolicyRecord", {"id": "deploy"})
        edited = {**row["requirement_json"], "quorum": 2}
        await db.update_where(
            "ApprovalPolicyRecord", {"id": "deploy"}, {"requirement_json": edited}
        )
        await db.update_where("ApprovalDelegationRecord", {"delegate_id": "dee"}, {"until": None})
        await db.insert(
            "ApprovalPolicyRecord",
            {"id": "sneaky", "requirement_json": edited, "updated_by": "mallory"},
        )
    problems = (await m.verify_audit()).problems
    assert sorted((p.request_id, p.message) for p in problems) == [
        ("delegation:bo", "stored delegation differs from its audit trail"),
        ("policy:deploy", "stored policy differs from its audit trail"),
        ("policy:sneaky", "stored policy differs from its audit trail"),
    ]
    assert (await m.verify_audit("some-request")).ok  # one request: no settings checked


async def test_an_edited_settings_event_is_reported(db: DataFlow) -> None:
    m = manager_on(ExternalAgentApprovalStorage(db))
    requirement = ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["ana"])
    await m.save_policy("deploy", requirement, actor="ops")
    await db.update_where("ApprovalSettingsAuditRecord", {"subject": "deploy"}, {"actor": "eve"})
    problems = (await m.verify_audit()).problems
    assert [(p.request_id, p.seq, p.message) for p in problems] == [
        ("policy:deploy", 0, "event was modified (hash mismatch)")
    ]


async def test_a_revoke_between_reading_a_delegation_and_voting_refuses_the_vote(
    store: Any,
) -> None:
    m = manager_on(store)
    m.set_approvers("deploy", ["ana", "bo"], quorum=2)
    await m.delegate("bo", to="dee")
    rid = await m.request_approval("deploy", "dev", {})
    settings = store.settings
    read = store.load_for_vote  # what a vote is judged on: the request and delegations

    async def read_then_revoke(*args: Any) -> Any:
        found = await read(*args)
        await settings.delete_delegation("bo", "dee", "bo")  # another instance revokes now
        return found

    store.load_for_vote = read_then_revoke
    try:
        with pytest.raises(NotAuthorizedError):
            await m.approve_request(rid, "dee")
    finally:
        store.load_for_vote = read
    request = await m.get_request(rid)
    assert request is not None and request.votes == []
    assert await events(m, rid) == ["requested"]


async def test_a_stored_policy_edited_into_nonsense_is_named_not_fatal(
    store: Any, db: DataFlow
) -> None:
    m = manager_on(store)
    good = ApprovalRequirement(ApprovalLevel.CUSTOM, custom_approvers=["ana"])
    await m.save_policy("good", good)
    await m.save_policy("bad", good)
    broken = {**requirement_to_json(good), "require_for_operations": 7}
    if isinstance(store, InMemoryApprovalStore):
        store.settings._policies["bad"] = broken
    else:
        await db.update_where("ApprovalPolicyRecord", {"id": "bad"}, {"requirement_json": broken})
    assert await m.load_policies() == {"good": good}
    with pytest.raises(ValidationError, match="stored policy of agent 'bad' cannot be read"):
        await m.request_approval("bad", "dev", {})
