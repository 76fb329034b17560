"""What both bridges share: the ImportError without the framework, the documented
examples, and how a decision is read."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from bridge_support import (
    AGENT,
    APPROVERS,
    REFUND,
    REQUESTER,
    make_manager,
    openai_agent,
    pydantic_agent,
)

from dataflow import DataFlow, ValidationError
from dataflow.values import utcnow
from kaizen.governance import ApprovalNotFoundError, ApprovalStatus, ExternalAgentApprovalRequest
from kaizen.integrations import _approvals
from kaizen.integrations._approvals import (
    ApprovalDesk,
    PendingApproval,
    ToolCall,
    missing_framework,
    parse_arguments,
    read_decision,
    request_id_for,
)
from kaizen.integrations.openai_agents import OpenAIAgentsApprovals
from kaizen.integrations.pydantic_ai import PydanticAIApprovals
from workers import Worker

WORKER = Path(__file__).with_name("bridge_worker.py")
_WITHOUT_FRAMEWORKS = """
import sys
import dataflow, kaizen.governance, kaizen.integrations
print(sorted(m for m in ("agents", "pydantic_ai") if m in sys.modules))
sys.modules["agents"] = None
sys.modules["pydantic_ai"] = None
for bridge in ("openai_agents", "pydantic_ai"):
    try:
        __import__("kaizen.integrations." + bridge)
    except ImportError as exc:
        print(exc)
"""


def test_without_its_framework_a_bridge_names_the_extra_to_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_FRAMEWORKS], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[]",  # the core imports neither framework
        "kaizen.integrations.openai_agents needs the OpenAI Agents SDK, which is not "
        "installed: pip install 'kaizen-dataflow[openai-agents]'",
        "kaizen.integrations.pydantic_ai needs Pydantic AI, which is not installed: "
        "pip install 'kaizen-dataflow[pydantic-ai]'",
    ]


def test_the_import_error_names_the_extra() -> None:
    error = missing_framework("kaizen.integrations.x", "X", "x-extra")
    assert isinstance(error, ImportError) and "kaizen-dataflow[x-extra]" in str(error)


def example(module: str) -> str:
    """The complete program of a bridge's module docstring."""
    doc = importlib.import_module(module).__doc__
    assert doc is not None
    return textwrap.dedent(doc.split("::\n", 1)[1].split("\n    It prints")[0])


@pytest.mark.parametrize(
    ("module", "prints"),
    [
        ("kaizen.integrations.openai_agents", "refunded 50 on order 42"),
        ("kaizen.integrations.pydantic_ai", "refunded 50 on order 42"),
    ],
)
def test_the_documented_example_runs_as_a_file(module: str, prints: str, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example(module), encoding="utf-8")
    unset = ("DATABASE_URL", "KAIZEN_DATABASE_URL", "PYTHONWARNINGS")
    env = {k: v for k, v in os.environ.items() if k not in unset}  # its own SQLite file
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    noise = [line for line in done.stderr.splitlines() if " took " not in line]
    assert not noise, done.stderr
    assert done.stdout.splitlines() == ["refund {'order_id': 42, 'amount': 500}", prints]


def _request(status: ApprovalStatus, **fields: Any) -> ExternalAgentApprovalRequest:
    now = utcnow()
    metadata = {
        "framework": "openai-agents",
        "thread_id": "t",
        "tool_name": "refund",
        "call_id": "c1",
        "arguments": REFUND,
    }
    return ExternalAgentApprovalRequest(
        id="r1",
        external_agent_id=AGENT,
        requested_by=REQUESTER,
        approvers=["lead-456"],
        status=status,
        approval_reason=None,
        request_metadata=metadata,
        created_at=now,
        deadline_at=now + timedelta(hours=1),
        approved_by=None if status is ApprovalStatus.TIMEOUT else "lead-456",
        **fields,
    )


APPROVAL = PendingApproval("r1", "c1", "refund", REFUND)


def test_an_approval_is_honoured_only_for_edited_arguments() -> None:
    same = _request(ApprovalStatus.APPROVED)
    assert read_decision(same, APPROVAL) == _approvals.ToolDecision(
        "r1", "c1", "refund", ApprovalStatus.APPROVED, True, REFUND, decided_by="lead-456"
    )
    version = dict(same.request_metadata)
    unchanged = read_decision(
        _request(ApprovalStatus.APPROVED, approved_metadata=version), APPROVAL
    )
    assert unchanged is not None and unchanged.approved and not unchanged.edited
    renamed = {**version, "tool_name": "refund_all"}
    decision = read_decision(_request(ApprovalStatus.APPROVED, approved_metadata=renamed), APPROVAL)
    assert decision is not None and not decision.approved
    assert decision.message is not None and "changed tool_name" in decision.message
    no_arguments = {k: v for k, v in version.items() if k != "arguments"}
    decision = read_decision(
        _request(ApprovalStatus.APPROVED, approved_metadata=no_arguments), APPROVAL
    )
    assert decision is not None and not decision.approved
    assert decision.message is not None and "no arguments object" in decision.message
    rejected = read_decision(_request(ApprovalStatus.REJECTED), APPROVAL)
    assert rejected is not None and rejected.message == "A human reviewer rejected this tool call."
    assert read_decision(_request(ApprovalStatus.PENDING), APPROVAL) is None


def test_arguments_that_are_not_an_object_are_kept_as_text() -> None:
    assert parse_arguments(None) == ({}, None)
    assert parse_arguments('{"a": 1}') == ({"a": 1}, None)
    assert parse_arguments({"a": 1}) == ({"a": 1}, None)
    assert parse_arguments("[1]") == ({}, "[1]")
    assert parse_arguments("{nope") == ({}, "{nope")
    assert parse_arguments('{"amount": NaN}') == ({}, '{"amount": NaN}')  # not JSON: raw


def test_request_ids_are_derived_and_distinct() -> None:
    assert request_id_for("f", "t", "c") == request_id_for("f", "t", "c")
    assert request_id_for("f", "t:c", "") != request_id_for("f", "t", ":c")
    assert request_id_for("f", "t", "c").startswith("f-")


async def test_the_desk_checks_calls_and_finds_deleted_requests() -> None:
    manager = make_manager()
    desk = ApprovalDesk(manager, framework="f", external_agent_id=AGENT, requested_by=REQUESTER)
    twice = [ToolCall("c1", "refund", {}), ToolCall("c1", "refund", {})]
    with pytest.raises(ValidationError, match="distinct call ids"):
        await desk.ask("t", twice, {})
    with pytest.raises(ValidationError, match="no call id"):
        await desk.ask("t", [ToolCall("", "refund", {})], {})
    with pytest.raises(ValidationError, match="tool name"):
        await desk.ask("t", [ToolCall("c1", "", {})], {})
    with pytest.raises(ValidationError, match="raw_arguments"):
        await desk.ask("t", [ToolCall("c1", "refund", {}, raw_arguments="\x00")], {})
    # One bad call among good ones: nothing is asked (no half of a pause in the inbox).
    good_then_bad = [ToolCall("c0", "refund", REFUND), ToolCall("c9", "refund", {"k": "\x00"})]
    with pytest.raises(ValidationError):
        await desk.ask("t", good_then_bad, {})
    assert await manager.get_request(request_id_for("f", "t", "c0")) is None
    ghost = PendingApproval(request_id_for("f", "t", "c2"), "c2", "refund", REFUND)
    with pytest.raises(ApprovalNotFoundError):
        await desk.decide("t", [ghost], 0)
    # Only an approved request of this thread and tool vouches for a grant.
    assert await desk.approved_arguments("t", ghost.request_id, "refund") is None
    [asked] = await desk.ask("t", [ToolCall("c1", "refund", REFUND)], {})
    assert await desk.approved_arguments("t", asked.request_id, "refund") is None  # pending
    await manager.approve_request(asked.request_id, "lead-456")
    assert await desk.approved_arguments("t", asked.request_id, "refund") == REFUND
    assert await desk.approved_arguments("t2", asked.request_id, "refund") is None
    assert await desk.approved_arguments("t", asked.request_id, "cancel_order") is None


@pytest.mark.parametrize("framework", ["openai", "pydantic"])
async def test_a_run_resumed_by_two_processes_at_once_runs_its_tool_once(
    db_url: str, tmp_path: Path, framework: str
) -> None:
    async with DataFlow(db_url) as db:
        manager = make_manager(db)
        if framework == "openai":
            outcome = await OpenAIAgentsApprovals(
                manager, external_agent_id=AGENT, requested_by=REQUESTER
            ).run(openai_agent("refund"), "help", thread_id="twice")
        else:
            outcome = await PydanticAIApprovals(
                manager, external_agent_id=AGENT, requested_by=REQUESTER
            ).run(pydantic_agent("refund"), "help", thread_id="twice")
        assert outcome.pending is not None
        [paused] = outcome.pending.approvals
        await manager.approve_request(paused.request_id, APPROVERS[0])
        saved = tmp_path / "pending.json"
        saved.write_text(outcome.pending.to_json(), encoding="utf-8")
        # Two instances resume the same stored run at once: the refund is paid once.
        workers = [
            await Worker.spawn(WORKER, db_url, str(saved), "[]", framework) for _ in range(2)
        ]
        results = await asyncio.gather(*(w.result() for w in workers))
        assert sorted(len(r["calls"]) for r in results) == [0, 1]
        [lost] = [r for r in results if not r["calls"]]
        assert "already carried out by another resume" in lost["conflict"]
        trail = await manager.get_audit_trail(paused.request_id)
        assert [e.event for e in trail] == ["requested", "approved", "claimed"]
        assert (await manager.verify_audit()).ok
