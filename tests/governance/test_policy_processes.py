"""Approval policies with app instances as real OS processes sharing one database.

Quorum votes racing from six processes, a veto racing them, four sweepers escalating
and then timing out the same overdue requests, and a delegation honoured by an
instance that never saw it being made; the vote races again in memory (one process,
asyncio), on a store that yields to the event loop around its reads and writes as a
database's round trips would.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from gov_helpers import Worker
from gov_worker import vote_outcome

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    AlreadyVotedError,
    ApprovalStatus,
    AuditEvent,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
)
from kaizen.governance._rows import Change
from workers import together

AGENT = "agent-q"
APPROVERS = ["approver-a", "approver-b", "approver-c"]
#: Requests every race decides, per database.
TRIALS = 100
#: Two processes per approver, all voting to approve.
APPROVING = [(a, "approve") for a in APPROVERS for _ in range(2)]
#: The same, but one of approver-a's two processes rejects.
VETOING = [(APPROVERS[0], "reject"), *APPROVING[1:]]
REFUSED = {"AlreadyVotedError", "AlreadyDecidedError"}
#: Overdue requests the sweepers share; and the length of each of their deadlines.
SWEPT = 40
SWEEPERS = 4
DEADLINE_SECONDS = 1.0

Racers = Sequence[tuple[str, str]]
#: Per racer: request id -> ``[outcome, status]`` (see ``gov_worker.vote_outcome``).
Outcomes = list[dict[str, list[str]]]


def _manager(db: DataFlow) -> ExternalAgentApprovalManager:
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.set_approvers(AGENT, APPROVERS, quorum=2)
    return manager


async def _requests(manager: ExternalAgentApprovalManager, count: int) -> list[str]:
    return [await manager.request_approval(AGENT, "user-1", {"n": i}) for i in range(count)]


# -- quorum and veto races -----------------------------------------------------


async def _race_processes(url: str, ids: list[str], racers: Racers) -> Outcomes:
    """Each racer a process voting on every request, in the same order: six votes meet
    on each request at once."""
    workers = [
        await Worker.start(url, "vote_race", ids=ids, approver=approver, action=action)
        for approver, action in racers
    ]
    return await together(workers)


async def _check_race(
    manager: ExternalAgentApprovalManager, ids: list[str], racers: Racers, outcomes: Outcomes
) -> Counter[str]:
    """Check every request of a race; how many ended approved and rejected."""
    kinds = [Counter(kind for kind, _ in o.values()) for o in outcomes]
    for (approver, action), tally, outcome in zip(racers, kinds, outcomes, strict=True):
        assert set(outcome) == set(ids), "every vote got an answer"
        assert set(tally) <= {"voted", *REFUSED}, (approver, action, tally)
    ends: Counter[str] = Counter()
    for rid in ids:
        status = await _check_request(manager, rid, racers, [o[rid] for o in outcomes])
        ends[status.value] += 1
    report = await manager.verify_audit()
    assert report.ok, report
    # Per racer, which answers it got (shown with -rP): how the race went.
    print(dict(ends), [f"{a}/{act}: {dict(t)}" for (a, act), t in zip(racers, kinds, strict=True)])
    return ends


async def _check_request(
    manager: ExternalAgentApprovalManager,
    rid: str,
    racers: Racers,
    outcomes: list[list[str]],
) -> ApprovalStatus:
    """One request: decided once, consistently with the votes stored and the answers
    the racers got. Returns its final status."""
    request = await manager.get_request(rid)
    assert request is not None
    _check_decision(request, await manager.get_audit_trail(rid))
    _check_answers(request, racers, outcomes)
    return request.status


def _check_decision(request: ExternalAgentApprovalRequest, trail: list[AuditEvent]) -> None:
    """The decision is the one the recorded votes make, in the order they were recorded."""
    votes = request.votes
    assert [e.details["vote"]["approver_id"] for e in trail[1:]] == [v.approver_id for v in votes]
    assert len({v.approver_id for v in votes}) == len(votes), "an approver voted twice"
    assert all(v.on_behalf_of is None for v in votes)
    rejects = [i for i, v in enumerate(votes) if v.decision == "reject"]
    if rejects:  # the veto: recorded before a second approval, and last
        assert rejects == [len(votes) - 1] and len(votes) <= 2, votes
        assert request.status is ApprovalStatus.REJECTED
        decision = "rejected"
    else:
        assert request.status is ApprovalStatus.APPROVED, (request.id, request.status, votes)
        assert len(votes) == 2
        decision = "approved"
    assert request.approved_by == votes[-1].approver_id
    assert [e.event for e in trail] == ["requested", *["voted"] * (len(votes) - 1), decision]


def _check_answers(
    request: ExternalAgentApprovalRequest, racers: Racers, outcomes: list[list[str]]
) -> None:
    """Exactly the stored votes succeeded (the last decided, any before it left the request
    pending); every other vote was refused naming a status the request had."""
    won = [
        (racer, status)
        for racer, (kind, status) in zip(racers, outcomes, strict=True)
        if kind == "voted"
    ]
    votes = request.votes
    assert sorted(r for r, _ in won) == sorted((v.approver_id, v.decision) for v in votes)
    assert sorted(s for _, s in won) == sorted(
        ["pending"] * (len(votes) - 1) + [request.status.value]
    )
    voters = {v.approver_id for v in votes}
    for (approver, _), (kind, status) in zip(racers, outcomes, strict=True):
        if kind == "AlreadyVotedError":
            assert approver in voters and status in ("pending", request.status.value)
        elif kind == "AlreadyDecidedError":
            assert status == request.status.value


async def test_quorum_votes_from_six_processes_approve_each_request_once(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        manager = _manager(db)
        ids = await _requests(manager, TRIALS)
        outcomes = await _race_processes(db_url, ids, APPROVING)
        assert await _check_race(manager, ids, APPROVING, outcomes) == {"approved": TRIALS}
        assert sum(kind == "voted" for o in outcomes for kind, _ in o.values()) == 2 * TRIALS


async def test_a_veto_racing_quorum_votes_decides_as_the_votes_say(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        manager = _manager(db)
        ids = await _requests(manager, TRIALS)
        outcomes = await _race_processes(db_url, ids, VETOING)
        ends = await _check_race(manager, ids, VETOING, outcomes)
        assert sum(ends.values()) == TRIALS


# -- the same races in memory ----------------------------------------------------


class _Interleaving:
    """The in-memory store, yielding to the event loop a random number of times around
    each read and before each write, so that gathered votes interleave."""

    def __init__(self, seed: int) -> None:
        self.inner = InMemoryApprovalStore()
        self._random = random.Random(seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _turns(self) -> None:
        for _ in range(self._random.randrange(4)):
            await asyncio.sleep(0)

    async def load(self, request_id: str) -> Any:
        await self._turns()
        found = await self.inner.load(request_id)
        await self._turns()
        return found

    async def append(self, change: Change) -> bool:
        await self._turns()
        return await self.inner.append(change)


@pytest.mark.parametrize("racers", [APPROVING, VETOING], ids=["quorum", "veto"])
async def test_quorum_and_veto_races_in_memory(racers: Racers) -> None:
    store = _Interleaving(seed=2026)
    managers = []
    for _ in racers:  # one manager per racer, sharing the store: instances in one process
        manager = ExternalAgentApprovalManager(storage_backend=store)  # type: ignore[arg-type]
        manager.set_approvers(AGENT, APPROVERS, quorum=2)
        managers.append(manager)
    ids = await _requests(managers[0], TRIALS)

    async def race(manager: ExternalAgentApprovalManager, voter: str, action: str) -> Any:
        return {rid: await vote_outcome(manager, rid, voter, action) for rid in ids}

    outcomes = list(
        await asyncio.gather(
            *(race(m, a, act) for m, (a, act) in zip(managers, racers, strict=True))
        )
    )
    ends = await _check_race(managers[0], ids, racers, outcomes)
    if racers is APPROVING:
        assert ends == {"approved": TRIALS}
    else:  # interleaved for real: the veto won some races and lost others
        assert ends["rejected"] and ends["approved"], ends


# -- escalation and timeout by concurrent sweepers ---------------------------------


async def _latest_deadline(manager: ExternalAgentApprovalManager, ids: list[str]) -> datetime:
    deadlines = []
    for rid in ids:
        request = await manager.get_request(rid)
        assert request is not None and request.deadline_at is not None
        deadlines.append(request.deadline_at)
    return max(deadlines)


async def _sweep_after(
    url: str, manager: ExternalAgentApprovalManager, ids: list[str]
) -> list[dict[str, list[str]]]:
    """Start the sweepers, wait until every deadline (as stored) has passed, release them."""
    sweepers = [await Worker.start(url, "sweep_overdue") for _ in range(SWEEPERS)]
    await _until_past(await _latest_deadline(manager, ids))
    return await together(sweepers)


async def _until_past(moment: datetime) -> None:
    """Sleep until ``moment`` has passed by the wall clock (the one deadlines are kept in)."""
    for _ in range(1000):
        left = (moment - utcnow()).total_seconds()
        if left < 0:
            return
        await asyncio.sleep(left + 0.01)


async def test_four_sweepers_escalate_then_time_out_each_request_once(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        manager = _manager(db)
        manager.set_approvers(
            AGENT, ["lead"], timeout_seconds=DEADLINE_SECONDS, escalate_to=["boss"]
        )
        ids = await _requests(manager, SWEPT)
        first = await _sweep_after(db_url, manager, ids)
        escalated = [rid for r in first for rid in r["escalated"]]
        assert sorted(escalated) == sorted(ids), "each escalated by exactly one sweeper"
        for rid in ids:
            request = await manager.get_request(rid)
            assert request is not None
            assert (request.approvers, request.escalations) == (["lead", "boss"], 1)
        second = await _sweep_after(db_url, manager, ids)
        assert [r["escalated"] for r in second] == [[]] * SWEEPERS
        # A sweep of the first round reaching a fresh deadline may time it out: still once.
        timed_out = [rid for r in (*first, *second) for rid in r["timed_out"]]
        assert sorted(timed_out) == sorted(ids), "each timed out by exactly one sweeper"
        for rid in ids:
            request = await manager.get_request(rid)
            assert request is not None and request.status is ApprovalStatus.TIMEOUT
            events = [e.event for e in await manager.get_audit_trail(rid)]
            assert events == ["requested", "escalated", "timed_out"]
        report = await manager.verify_audit()
        assert report.ok and report.events == 3 * SWEPT


# -- delegation across instances -------------------------------------------------


class _Instance:
    """A long-lived app instance in another process, casting votes one at a time."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    @classmethod
    async def start(cls, url: str) -> _Instance:
        worker = await Worker.start(url, "steps")
        await worker.ready()
        return cls(worker)

    async def vote(self, request_id: str, voter: str, action: str = "approve") -> list[Any]:
        """``[outcome, status, on_behalf_of of the voter's stored vote]``."""
        proc = self.worker.proc
        proc.stdin.write(json.dumps({"id": request_id, "voter": voter, "action": action}).encode())
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        async with asyncio.timeout(60):
            while line := await proc.stdout.readline():
                if line.startswith(b'{"step"'):
                    return list(json.loads(line)["step"])
        return [await self.worker.result()]  # ended early: fails with its stderr

    async def finish(self) -> Any:
        self.worker.proc.stdin.write(b"\n")
        return await self.worker.result()


async def test_a_delegation_is_honoured_by_an_instance_that_never_saw_it(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        manager = _manager(db)
        manager.set_approvers(AGENT, ["lead", "lead-2"])
        first, later = await _requests(manager, 2)
        manager.set_approvers(AGENT, ["lead", "lead-2"], quorum=2)
        [pair] = await _requests(manager, 1)
        other = await _Instance.start(db_url)
        assert await other.vote(first, "deputy") == ["NotAuthorizedError", "-", None]

        await manager.delegate("lead", to="deputy")
        assert await other.vote(first, "deputy") == ["voted", "approved", "lead"]
        assert await other.vote(pair, "deputy") == ["voted", "pending", "lead"]
        with pytest.raises(AlreadyVotedError):  # the deputy's vote for them is in
            await manager.approve_request(pair, "lead")
        assert (await manager.approve_request(pair, "lead-2")).status is ApprovalStatus.APPROVED

        assert await manager.revoke_delegation("lead", to="deputy")
        assert await other.vote(later, "deputy") == ["NotAuthorizedError", "-", None]
        assert await other.finish() == 4

        decided = await manager.get_request(first)
        assert decided is not None and decided.approved_by == "deputy"
        assert [(v.approver_id, v.on_behalf_of) for v in decided.votes] == [("deputy", "lead")]
        trail = await manager.get_audit_trail(first)
        assert [e.event for e in trail] == ["requested", "approved"]
        assert trail[1].details["on_behalf_of"] == "lead"
        untouched = await manager.get_request(later)
        assert untouched is not None and untouched.status is ApprovalStatus.PENDING
        assert untouched.votes == []
        assert (await manager.verify_audit()).ok
