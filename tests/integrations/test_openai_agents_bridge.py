"""The OpenAI Agents SDK bridge: real runs of the SDK's Runner on its scripted model
(``agents.testing.ScriptedModel``), paused on tools with ``needs_approval``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from agents import Runner
from bridge_support import (
    AGENT,
    APPROVERS,
    CALLS,
    CANCEL,
    EDITED_REFUND,
    REASON,
    REFUND,
    REQUESTER,
    SEEN,
    make_manager,
    openai_agent,
    stored,
)

from dataflow import DataFlow, DuplicateKeyError, ValidationError
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalManager
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage
from kaizen.integrations.openai_agents import Grant, OpenAIAgentsApprovals, PendingRun
from workers import Worker

WORKER = Path(__file__).with_name("bridge_worker.py")


def bridge(manager: ExternalAgentApprovalManager, **options: object) -> OpenAIAgentsApprovals:
    return OpenAIAgentsApprovals(
        manager,
        external_agent_id=AGENT,
        requested_by=REQUESTER,
        **options,  # type: ignore[arg-type]
    )


async def test_a_run_paused_here_is_decided_and_resumed_by_another_process(
    db_url: str, manager: ExternalAgentApprovalManager, tmp_path: Path
) -> None:
    approvals = bridge(manager, metadata={"environment": "production"})
    agent = openai_agent("refund", "cancel_order", "close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-1", metadata={"ticket": 1})
    assert outcome.result is not None and len(outcome.result.interruptions) == 3
    pending = outcome.pending
    assert pending is not None and CALLS == []
    by_tool = {a.tool_name: a for a in pending.approvals}
    assert by_tool["refund"].arguments == REFUND

    # Another instance sees each paused call as a request, with the tool's arguments.
    requests = await stored(db_url, [a.request_id for a in pending.approvals])
    refund = next(r for r in requests if r.id == by_tool["refund"].request_id)
    assert refund.request_metadata == {
        "environment": "production",
        "ticket": 1,
        "framework": "openai-agents",
        "thread_id": "ticket-1",
        "tool_name": "refund",
        "call_id": "call-refund",
        "arguments": REFUND,
    }
    assert (refund.external_agent_id, refund.requested_by) == (AGENT, REQUESTER)
    assert {r.status for r in requests} == {ApprovalStatus.PENDING}

    # Asking again for the same pause finds the same requests (stored() counts them).
    again = await approvals.submit(outcome.result, thread_id="ticket-1", metadata={"ticket": 1})
    assert again is not None and again.approvals == pending.approvals
    await stored(db_url, [a.request_id for a in pending.approvals])

    # A second process approves one call as asked, one with edited arguments, rejects
    # one, and resumes the run from its stored JSON with an agent of its own.
    saved = tmp_path / "pending.json"
    saved.write_text(pending.to_json(), encoding="utf-8")
    edited = {**refund.request_metadata, "arguments": EDITED_REFUND}
    decisions = [
        {"id": by_tool["cancel_order"].request_id, "approve": True},
        {"id": by_tool["refund"].request_id, "approve": True, "metadata": edited},
        {"id": by_tool["close_account"].request_id, "reason": REASON},
    ]
    worker = await Worker.spawn(WORKER, db_url, str(saved), json.dumps(decisions))
    result = await worker.result()

    assert result["calls"] == [["cancel_order", CANCEL], ["refund", EDITED_REFUND]]
    assert result["seen"]["call-close_account"] == REASON  # denied: the model sees why
    assert '"amount": 50' in result["seen"]["call-refund"]  # asked to call again with 50
    assert result["seen"]["call-refund-2"] == "refunded 50 on order 42"
    assert (result["final"], result["paused"]) == ("done", False)
    assert sorted(result["decisions"]) == [
        ["cancel_order", "approved", False],
        ["close_account", "rejected", False],
        ["refund", "approved", True],
    ]
    # The edited call ran on the approval given: no new request was made for it.
    requests = await stored(db_url, [a.request_id for a in pending.approvals])
    assert [r.status for r in requests] == [
        {"refund": ApprovalStatus.APPROVED, "cancel_order": ApprovalStatus.APPROVED}.get(
            r.request_metadata["tool_name"], ApprovalStatus.REJECTED
        )
        for r in requests
    ]


async def test_undecided_calls_stay_paused_while_decided_ones_go_ahead(
    db: DataFlow, manager: ExternalAgentApprovalManager
) -> None:
    approvals = bridge(manager)
    agent = openai_agent("refund", "close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-2")
    first = outcome.pending
    assert first is not None
    refund, close = sorted(first.approvals, key=lambda a: a.tool_name != "refund")

    # Nothing decided: nothing runs.
    nothing = await approvals.resume(agent, first.to_dict())
    assert (nothing.result, nothing.pending, nothing.decisions) == (None, first, [])

    # The refund approved with 50: the paused refund is refused with the approved
    # arguments; close_account still waits, under the same request.
    request = await manager.get_request(refund.request_id)
    assert request is not None
    edited = {**request.request_metadata, "arguments": EDITED_REFUND}
    await manager.approve_request(refund.request_id, "lead-456", metadata=edited)
    partial = await approvals.resume(agent, first)
    assert partial.pending is not None and partial.pending.approvals == (close,)
    assert [g.arguments for g in partial.pending.grants] == [EDITED_REFUND]
    assert CALLS == [] and [d.edited for d in partial.decisions] == [True]

    # Kept in a cross-channel session, read back by another instance's session manager.
    sessions = NexusSessionManager(storage_backend=SessionStorage(db))
    session = await sessions.create_session_async(user_id=REQUESTER)
    state = {"pending_run": partial.pending.to_dict()}
    assert await sessions.update_session_state_async(session.session_id, state, "api")
    elsewhere = NexusSessionManager(storage_backend=SessionStorage(db))
    loaded = await elsewhere.load_session_async(session.session_id)
    assert loaded is not None
    kept = PendingRun.from_dict(loaded.state["pending_run"])
    assert kept == PendingRun.from_json(partial.pending.to_json()) == partial.pending

    # Rejected: the model hears the reason, calls refund with 50, which runs at once.
    await manager.reject_request(close.request_id, "lead-789", REASON)
    done = await approvals.resume(agent, kept)
    assert done.result is not None and done.pending is None
    assert CALLS == [["refund", EDITED_REFUND]]
    assert SEEN["call-close_account"] == REASON
    assert done.result.final_output == "done"
    assert len(await manager.list_requests(limit=10)) == 2


async def test_a_wait_ends_when_someone_decides(
    db: DataFlow, manager: ExternalAgentApprovalManager
) -> None:
    approvals = bridge(manager)
    agent = openai_agent("cancel_order")
    outcome = await approvals.run(agent, "help", thread_id="ticket-3")
    assert outcome.pending is not None
    [paused] = outcome.pending.approvals
    waiting = asyncio.create_task(approvals.resume(agent, outcome.pending, wait=60))
    await manager.approve_request(paused.request_id, "lead-456")
    done = await asyncio.wait_for(waiting, 60)
    assert CALLS == [["cancel_order", CANCEL]] and done.pending is None


async def test_a_call_nobody_approved_in_time_is_refused(db: DataFlow) -> None:
    manager = make_manager(db, timeout=0.001)
    approvals = bridge(manager)
    agent = openai_agent("close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-4")
    assert outcome.pending is not None
    await asyncio.sleep(0.002)  # the deadline is a millisecond away
    done = await approvals.resume(agent, outcome.pending)
    assert CALLS == [] and done.pending is None
    assert [d.status for d in done.decisions] == [ApprovalStatus.TIMEOUT]
    assert SEEN["call-close_account"] == done.decisions[0].message
    assert "before its deadline" in SEEN["call-close_account"]


async def test_inputs_are_checked() -> None:
    manager = make_manager()
    with pytest.raises(ValidationError, match="ExternalAgentApprovalManager"):
        OpenAIAgentsApprovals("manager", external_agent_id=AGENT, requested_by=REQUESTER)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="external_agent_id"):
        OpenAIAgentsApprovals(manager, external_agent_id=" ", requested_by=REQUESTER)
    with pytest.raises(ValidationError, match="keys the bridge writes"):
        bridge(manager, metadata={"arguments": 1})
    approvals = bridge(manager)
    agent = openai_agent("refund")
    with pytest.raises(ValidationError, match="thread_id"):
        await approvals.run(agent, "help", thread_id="")
    with pytest.raises(ValidationError, match="must be a dict"):
        await approvals.run(agent, "help", thread_id="t", metadata=[1])  # type: ignore[arg-type]
    outcome = await approvals.run(agent, "help", thread_id="t")
    assert outcome.result is not None and outcome.pending is not None
    with pytest.raises(ValidationError, match="Grant"):
        await approvals.submit(outcome.result, thread_id="t", grants=[{"x": 1}])  # type: ignore[list-item]
    with pytest.raises(ValidationError, match="PendingRun"):
        await approvals.resolve(agent, outcome.pending.to_dict())  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="wait"):
        await approvals.resume(agent, outcome.pending, wait=-1)
    # The same thread and call ids asked with other content: a reused thread id.
    other = openai_agent("refund")
    with pytest.raises(DuplicateKeyError, match="new thread_id"):
        await bridge(manager, metadata={"ticket": 2}).run(other, "help", thread_id="t")


async def test_an_altered_pending_run_is_refused() -> None:
    manager = make_manager()
    approvals = bridge(manager)
    agent = openai_agent("refund")
    outcome = await approvals.run(agent, "help", thread_id="t")
    pending = outcome.pending
    assert pending is not None
    data = pending.to_dict()
    data["approvals"][0]["arguments"] = {"order_id": 42, "amount": 5}
    with pytest.raises(ValidationError, match="altered"):
        await approvals.resume(agent, data)
    data = pending.to_dict()
    data["thread_id"] = "another"
    with pytest.raises(ValidationError, match="altered"):
        await approvals.resume(agent, data)
    data = pending.to_dict()
    data["state"] = {"$schemaVersion": "0.0"}
    with pytest.raises(ValidationError, match="cannot restore the run state"):
        await approvals.resume(agent, data)
    document = pending.to_dict()
    for bad in (
        "{",
        "[]",
        '{"kind": "x", "version": 1}',
        json.dumps({**document, "grants": 1}),
        json.dumps({**document, "grants": [1]}),
        json.dumps({**document, "approvals": ["x"]}),
    ):
        with pytest.raises(ValidationError, match=r"pending run|grant|approval"):
            PendingRun.from_json(bad)


async def test_a_grant_approves_the_edited_call_once_and_only_if_real(
    manager: ExternalAgentApprovalManager,
) -> None:
    approvals = bridge(manager)
    agent = openai_agent("refund")
    outcome = await approvals.run(agent, "help", thread_id="t")
    assert outcome.pending is not None
    [paused] = outcome.pending.approvals
    request = await manager.get_request(paused.request_id)
    assert request is not None
    edited = {**request.request_metadata, "arguments": EDITED_REFUND}
    await manager.approve_request(paused.request_id, "lead-456", metadata=edited)

    # The low-level steps: resolve, run the state yourself, submit with the grants.
    resolution = await approvals.resolve(agent, outcome.pending)
    assert [(g.tool_name, g.arguments) for g in resolution.grants] == [("refund", EDITED_REFUND)]
    again = await Runner.run(agent, resolution.state)  # the model calls refund with 50
    forged = Grant("openai-agents-0", "refund", dict(EDITED_REFUND))  # approved by nobody
    with pytest.raises(ValidationError, match="not an approval of these arguments"):
        await approvals.submit(again, thread_id="t", grants=[forged])
    pending = await approvals.submit(again, thread_id="t", grants=resolution.grants)
    assert pending is not None and (pending.approvals, pending.grants) == ((), ())
    done = await approvals.resume(agent, pending)  # nothing to wait for: it runs at once
    assert CALLS == [["refund", EDITED_REFUND]] and done.pending is None
    # A run that did not pause has nothing to submit, as a result or as a state.
    assert done.result is not None
    assert await approvals.submit(done.result, thread_id="t") is None
    assert await approvals.submit(done.result.to_state(), thread_id="t") is None
    with pytest.raises(ValidationError, match="a paused run is"):
        await approvals.submit("paused", thread_id="t")  # type: ignore[arg-type]


async def test_the_agent_id_can_depend_on_the_tool() -> None:
    manager = make_manager()
    manager.set_approvers("payments-bot", APPROVERS)
    approvals = OpenAIAgentsApprovals(
        manager,
        external_agent_id=lambda tool: "payments-bot" if tool == "refund" else AGENT,
        requested_by=REQUESTER,
    )
    outcome = await approvals.run(openai_agent("refund", "cancel_order"), "help", thread_id="t")
    assert outcome.pending is not None
    agents = {}
    for paused in outcome.pending.approvals:
        request = await manager.get_request(paused.request_id)
        assert request is not None
        agents[paused.tool_name] = request.external_agent_id
    assert agents == {"refund": "payments-bot", "cancel_order": AGENT}
    bad = OpenAIAgentsApprovals(manager, external_agent_id=lambda tool: "", requested_by=REQUESTER)
    with pytest.raises(ValidationError, match="external_agent_id given for tool 'refund'"):
        await bad.run(openai_agent("refund"), "help", thread_id="t2")
