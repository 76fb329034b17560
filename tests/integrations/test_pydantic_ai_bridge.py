"""The Pydantic AI bridge: real agent runs on ``FunctionModel``, ended by deferred calls
of tools with ``requires_approval=True`` or raising ``ApprovalRequired``."""

from __future__ import annotations

import asyncio
import json

import pytest
from bridge_support import (
    AGENT,
    CALLS,
    CANCEL,
    EDITED_REFUND,
    REASON,
    REFUND,
    REQUESTER,
    SEEN,
    cli,
    make_manager,
    pydantic_agent,
    stored,
)
from pydantic_ai import DeferredToolResults, ToolApproved, ToolDenied

from dataflow import DataFlow, ValidationError
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalManager
from kaizen.integrations.pydantic_ai import PendingRun, PydanticAIApprovals


def bridge(manager: ExternalAgentApprovalManager, **options: object) -> PydanticAIApprovals:
    return PydanticAIApprovals(
        manager,
        external_agent_id=AGENT,
        requested_by=REQUESTER,
        **options,  # type: ignore[arg-type]
    )


async def test_calls_decided_on_the_command_line_resume_on_a_fresh_instance(
    db_url: str, manager: ExternalAgentApprovalManager
) -> None:
    approvals = bridge(manager, metadata={"environment": "production"})
    agent = pydantic_agent("refund", "cancel_order", "close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-1")
    pending = outcome.pending
    assert pending is not None and CALLS == []
    by_tool = {a.tool_name: a for a in pending.approvals}
    assert set(by_tool) == {"refund", "cancel_order", "close_account"}

    requests = await stored(db_url, [a.request_id for a in pending.approvals])
    cancel = next(r for r in requests if r.id == by_tool["cancel_order"].request_id)
    assert cancel.request_metadata == {
        "environment": "production",
        "framework": "pydantic-ai",
        "thread_id": "ticket-1",
        "tool_name": "cancel_order",
        "call_id": "call-cancel_order",
        "arguments": CANCEL,
        "tool_metadata": {"why": "cannot be undone"},  # what ApprovalRequired attached
    }
    assert outcome.result is not None
    again = await approvals.submit(outcome.result, thread_id="ticket-1")
    assert again is not None and again.approvals == pending.approvals
    await stored(db_url, [a.request_id for a in pending.approvals])  # still three

    # Decided by other processes: `kaizen approvals approve --metadata` edits the refund.
    refund = next(r for r in requests if r.id == by_tool["refund"].request_id)
    edited = json.dumps({**refund.request_metadata, "arguments": EDITED_REFUND})
    cli(db_url, "approvals", "approve", refund.id, "--as", "lead-456", "--metadata", edited)
    close_id = by_tool["close_account"].request_id
    cli(db_url, "approvals", "reject", close_id, "--as", "lead-789", "--reason", REASON)
    await manager.approve_request(cancel.id, "lead-456")

    # A fresh instance (its own DataFlow, manager, agent) resumes from the JSON.
    saved = pending.to_json()
    async with DataFlow(db_url) as db:
        fresh = bridge(make_manager(db))
        done = await fresh.resume(pydantic_agent(), PendingRun.from_json(saved))
    assert done.result is not None and done.pending is None
    assert done.result.output == "done"
    assert sorted(CALLS) == [["cancel_order", CANCEL], ["refund", EDITED_REFUND]]
    assert SEEN["call-close_account"] == REASON  # denied: the tool never ran
    assert SEEN["call-refund"] == "refunded 50 on order 42"
    assert {(d.tool_name, d.status, d.edited) for d in done.decisions} == {
        ("refund", ApprovalStatus.APPROVED, True),
        ("cancel_order", ApprovalStatus.APPROVED, False),
        ("close_account", ApprovalStatus.REJECTED, False),
    }


async def test_the_run_waits_for_every_decision(
    db: DataFlow, manager: ExternalAgentApprovalManager
) -> None:
    approvals = bridge(manager)
    agent = pydantic_agent("refund", "close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-2")
    pending = outcome.pending
    assert pending is not None
    refund, close = sorted(pending.approvals, key=lambda a: a.tool_name != "refund")
    await manager.approve_request(refund.request_id, "lead-456")

    # One decided, one not: Pydantic AI continues only with a result for each call.
    resolution = await approvals.resolve(pending)
    assert resolution.undecided == [close]
    assert resolution.results.approvals == {
        "call-refund": ToolApproved(override_args={"order_id": 42, "amount": 500})
    }
    assert resolution.results.metadata["call-refund"] == {
        "approval_request_id": refund.request_id,
        "decided_by": "lead-456",
    }
    early = await approvals.resume(agent, pending.to_json())
    assert (early.result, early.pending) == (None, pending) and CALLS == []

    waiting = asyncio.create_task(approvals.resume(agent, pending, wait=60))
    await manager.reject_request(close.request_id, "lead-789", REASON)
    done = await asyncio.wait_for(waiting, 60)
    assert done.pending is None and CALLS == [["refund", REFUND]]
    assert SEEN["call-close_account"] == REASON


async def test_a_call_nobody_approved_in_time_is_denied(db: DataFlow) -> None:
    approvals = bridge(make_manager(db, timeout=0.001))
    agent = pydantic_agent("close_account")
    outcome = await approvals.run(agent, "help", thread_id="ticket-3")
    assert outcome.pending is not None
    await asyncio.sleep(0.002)  # the deadline is a millisecond away
    resolution = await approvals.resolve(outcome.pending)
    [decision] = resolution.decisions
    assert decision.status is ApprovalStatus.TIMEOUT and not decision.approved
    assert resolution.results.approvals == {
        "call-close_account": ToolDenied(decision.message or "")
    }


async def test_external_calls_need_their_results() -> None:
    manager = make_manager()
    approvals = bridge(manager)
    agent = pydantic_agent("refund", "lookup")
    outcome = await approvals.run(agent, "help", thread_id="t")
    pending = outcome.pending
    assert pending is not None and [c.tool_name for c in pending.requests.calls] == ["lookup"]
    [paused] = pending.approvals
    await manager.approve_request(paused.request_id, "lead-456")
    with pytest.raises(ValidationError, match=r"external tool calls \['call-lookup'\]"):
        await approvals.resume(agent, pending)
    with pytest.raises(ValidationError, match="DeferredToolResults"):
        await approvals.resume(agent, pending, deferred_tool_results={"calls": {}})
    with pytest.raises(ValidationError, match="own message history"):
        await approvals.resume(agent, pending, message_history=[])
    looked_up = DeferredToolResults(calls={"call-lookup": "a loyal customer"})
    done = await approvals.resume(agent, pending, deferred_tool_results=looked_up)
    assert done.pending is None and CALLS == [["refund", REFUND]]
    assert SEEN["call-lookup"] == "a loyal customer"


async def test_a_run_that_needs_no_approval_has_nothing_pending() -> None:
    approvals = bridge(make_manager())
    outcome = await approvals.run(pydantic_agent(), "hello", thread_id="t")
    assert outcome.result is not None and outcome.result.output == "done"
    assert outcome.pending is None


async def test_inputs_are_checked() -> None:
    manager = make_manager()
    with pytest.raises(ValidationError, match="requested_by"):
        PydanticAIApprovals(manager, external_agent_id=AGENT, requested_by="")
    approvals = bridge(manager)
    with pytest.raises(ValidationError, match="AgentRunResult"):
        await approvals.submit("result", thread_id="t")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="PendingRun"):
        await approvals.resolve({})  # type: ignore[arg-type]
    outcome = await approvals.run(pydantic_agent("refund"), "help", thread_id="t")
    pending = outcome.pending
    assert pending is not None
    with pytest.raises(ValidationError, match="wait"):
        await approvals.resolve(pending, wait=float("nan"))
    data = pending.to_dict()
    data["approvals"][0]["arguments"] = {"order_id": 1, "amount": 1}
    with pytest.raises(ValidationError, match="altered"):
        await approvals.resume(pydantic_agent(), data)
    data = pending.to_dict()
    data["messages"] = [{"kind": "nonsense"}]
    with pytest.raises(ValidationError, match="messages or requests are invalid"):
        PendingRun.from_dict(data)
    data["messages"] = "nonsense"
    with pytest.raises(ValidationError, match="'messages' is 'nonsense'"):
        PendingRun.from_dict(data)
    openai_kind = {**pending.to_dict(), "kind": "kaizen.openai-agents.pending-run"}
    with pytest.raises(ValidationError, match="not a pending run of this bridge"):
        PendingRun.from_dict(openai_kind)
    assert PendingRun.from_json(pending.to_json()) == pending
