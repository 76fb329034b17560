"""Approval policies on every target, the clusters included: a quorum reached by
concurrent votes of three managers (on three Galera nodes), and an escalation then
a timeout by concurrent sweeps, each done exactly once, the audit chains intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    AlreadyDecidedError,
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
)
from targets import TARGETS, target_urls

AGENT = "agent-p"
APPROVERS = ["lead-1", "lead-2", "lead-3"]


@dataclass
class Instances:
    """Three managers on the target (one per Galera node), and one that reads what
    every node committed."""

    managers: list[ExternalAgentApprovalManager]
    reader: ExternalAgentApprovalManager


@pytest.fixture(params=list(TARGETS))
def entry_points(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The target's name and the URL of each of its entry points to an empty database."""
    yield request.param, target_urls(request.param, tmp_path)


@pytest.fixture
async def instances(entry_points: tuple[str, list[str]]) -> AsyncIterator[Instances]:
    name, urls = entry_points
    # Galera: every instance reads causally, or a vote on one node may not see the request
    # another node just created (as the README says for multi-primary deployments).
    causal = "?wsrep_sync_wait=1" if name == "galera" else ""
    async with AsyncExitStack() as stack:
        flows = [
            await stack.enter_async_context(DataFlow(url + causal))
            for url in [*(urls[i % len(urls)] for i in range(3)), urls[0]]
        ]
        managers = [
            ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
            for db in flows
        ]
        for manager in managers:
            manager.set_approvers(
                AGENT, APPROVERS, quorum=2, timeout_seconds=1, escalate_to=["boss"]
            )
        yield Instances(managers[:3], managers[3])


async def test_concurrent_votes_reach_the_quorum_exactly_once(instances: Instances) -> None:
    first, *_ = instances.managers
    ids = [await first.request_approval(AGENT, "user", {"n": i}) for i in range(5)]
    for rid in ids:
        outcomes = await asyncio.gather(
            *(
                m.approve_request(rid, approver)
                for m, approver in zip(instances.managers, APPROVERS, strict=True)
            ),
            return_exceptions=True,
        )
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        statuses = sorted(o.status.value for o in outcomes if not isinstance(o, BaseException))
        # Two votes recorded; the third found the request approved.
        assert statuses == ["approved", "pending"], outcomes
        [error] = refused
        assert isinstance(error, AlreadyDecidedError), error
        assert error.status is ApprovalStatus.APPROVED
        request = await instances.reader.get_request(rid)
        assert request is not None and request.status is ApprovalStatus.APPROVED
        assert len(request.votes) == 2 and len({v.approver_id for v in request.votes}) == 2
        trail = await instances.reader.get_audit_trail(rid)
        assert [e.event for e in trail] == ["requested", "voted", "approved"]
    assert (await instances.reader.verify_audit()).ok


async def _after_deadline(reader: ExternalAgentApprovalManager, request_id: str) -> None:
    """Sleep until the deadline stored for the request has passed."""
    request = await reader.get_request(request_id)
    assert request is not None and request.deadline_at is not None
    for _ in range(1000):
        left = (request.deadline_at - utcnow()).total_seconds()
        if left < 0:
            return
        await asyncio.sleep(left + 0.01)


async def test_concurrent_sweeps_escalate_then_time_out_once(instances: Instances) -> None:
    managers, reader = instances.managers, instances.reader
    rid = await managers[0].request_approval(AGENT, "user", {"deploy": "prod"})
    await _after_deadline(reader, rid)
    first = await asyncio.gather(*(m.sweep_overdue() for m in managers))
    assert sorted(i for s in first for i in s.escalated) == [rid]
    request = await reader.get_request(rid)
    assert request is not None and request.approvers == [*APPROVERS, "boss"]
    await _after_deadline(reader, rid)
    second = await asyncio.gather(*(m.sweep_overdue() for m in managers))
    assert sorted(i for s in (*first, *second) for i in s.timed_out) == [rid]
    assert [s.escalated for s in second] == [[]] * len(managers)
    request = await reader.get_request(rid)
    assert request is not None and request.status is ApprovalStatus.TIMEOUT
    trail = await reader.get_audit_trail(rid)
    assert [e.event for e in trail] == ["requested", "escalated", "timed_out"]
    assert (await reader.verify_audit(rid)).ok
