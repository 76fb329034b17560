"""The agents of the bridge tests: real agent loops, with scripted models (no network).

Each framework's agent has the same three tools needing approval: ``refund``,
``cancel_order`` and ``close_account``; what each tool received is appended to
``CALLS``, and what the model was told about each call to ``SEEN`` (call id ->
the tool's result or the denial). The OpenAI Agents SDK agent runs on the SDK's own
``agents.testing.ScriptedModel``; the Pydantic AI agent on ``FunctionModel``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import Agent, function_tool, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import ApprovalRequired, CallDeferred, DeferredToolRequests, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from dataflow import DataFlow
from kaizen.governance import (
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
)

set_tracing_disabled(True)  # the SDK would try to export traces to OpenAI

AGENT = "support-bot"
APPROVERS = ["lead-456", "lead-789"]
REQUESTER = "user-123"
REFUND = {"order_id": 42, "amount": 500}
EDITED_REFUND = {"order_id": 42, "amount": 50}
CANCEL = {"order_id": 7}
CLOSE = {"customer": "c-9"}
REASON = "Closing an account needs a call with the customer first"
CLI = Path(sys.executable).with_name("kaizen")

CALLS: list[list[Any]] = []
SEEN: dict[str, str] = {}


def make_manager(db: DataFlow | None = None, timeout: float = 3600) -> ExternalAgentApprovalManager:
    """A manager (on ``db``'s storage, else in memory) routing AGENT to APPROVERS."""
    storage = None if db is None else ExternalAgentApprovalStorage(db)
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    manager.set_approvers(AGENT, APPROVERS, timeout_seconds=timeout)
    return manager


async def stored(url: str, ids: Sequence[str]) -> list[ExternalAgentApprovalRequest]:
    """The requests as another instance reads them: its own DataFlow and storage."""
    async with DataFlow(url) as db:
        storage = ExternalAgentApprovalStorage(db)
        found = [await storage.load(request_id) for request_id in ids]
        total = await storage.list(limit=1000)
    assert all(r is not None for r in found), "a request is missing"
    assert len(total) == len(ids), "more requests were stored than the paused calls"
    return [r for r in found if r is not None]


def cli(url: str, *argv: str) -> dict[str, Any]:
    """Run ``kaizen --db URL argv --json`` as its own process; its JSON output."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAIZEN_DATABASE_URL")}
    done = subprocess.run(
        [str(CLI), "--db", url, *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def reset() -> None:
    """Forget what the tools received and the model saw."""
    CALLS.clear()
    SEEN.clear()


# -- OpenAI Agents SDK ---------------------------------------------------------


@function_tool(needs_approval=True)
def refund(order_id: int, amount: float) -> str:
    """Refund part of an order."""
    CALLS.append(["refund", {"order_id": order_id, "amount": amount}])
    return f"refunded {amount:g} on order {order_id}"


@function_tool(needs_approval=True)
def cancel_order(order_id: int) -> str:
    """Cancel an order."""
    CALLS.append(["cancel_order", {"order_id": order_id}])
    return f"cancelled order {order_id}"


@function_tool(needs_approval=True)
def close_account(customer: str) -> str:
    """Close a customer's account."""
    CALLS.append(["close_account", {"customer": customer}])
    return f"closed {customer}"


def calls_of(*names: str) -> list[Any]:
    """One model turn calling each named tool (call id ``call-NAME``)."""
    arguments = {"refund": REFUND, "cancel_order": CANCEL, "close_account": CLOSE}
    return [function_call(name, arguments[name], call_id=f"call-{name}") for name in names]


def _note_outputs(call: ModelCall) -> None:
    for item in call.input:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            SEEN[str(item["call_id"])] = str(item["output"])


def follow_instructions(call: ModelCall) -> list[Any]:
    """A compliant model: told to call ``refund`` again with given arguments, it does;
    otherwise it answers ``done``."""
    _note_outputs(call)
    for item in call.input:
        output = item.get("output") if isinstance(item, dict) else None
        marker = "again with exactly these arguments: "
        if isinstance(output, str) and marker in output and item["call_id"] == "call-refund":
            arguments = json.loads(output.split(marker, 1)[1])
            if not any(i.get("call_id") == "call-refund-2" for i in call.input):
                return [function_call("refund", arguments, call_id="call-refund-2")]
    return [assistant_message("done")]


def openai_agent(*first_turn: str, turns: int = 2) -> Agent[Any]:
    """The support agent: its first turn calls ``first_turn``'s tools, every later one
    follows the instructions it was given (``turns`` of them)."""
    steps: list[Any] = [calls_of(*first_turn)] if first_turn else []
    steps += [ModelStep.respond(follow_instructions) for _ in range(turns)]
    return Agent(
        name="support", tools=[refund, cancel_order, close_account], model=ScriptedModel(steps)
    )


# -- Pydantic AI ----------------------------------------------------------------


def _pydantic_model(first_turn: Sequence[str]) -> FunctionModel:
    arguments = {"refund": REFUND, "cancel_order": CANCEL, "close_account": CLOSE, "lookup": CLOSE}

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(
                [ToolCallPart(n, dict(arguments[n]), tool_call_id=f"call-{n}") for n in first_turn]
            )
        for message in messages:
            if isinstance(message, ModelRequest):
                for part in message.parts:
                    if isinstance(part, ToolReturnPart):
                        SEEN[part.tool_call_id] = str(part.content)
        return ModelResponse([TextPart("done")])

    return FunctionModel(respond)


def pydantic_agent(*first_turn: str) -> PydanticAgent[None, str | DeferredToolRequests]:
    """The support agent on Pydantic AI: its first turn calls ``first_turn``'s tools
    (``cancel_order`` asks for approval by raising ApprovalRequired, ``lookup`` is
    executed elsewhere), then it answers ``done``."""
    agent: PydanticAgent[None, str | DeferredToolRequests] = PydanticAgent(
        _pydantic_model(first_turn), output_type=[str, DeferredToolRequests]
    )

    @agent.tool_plain(requires_approval=True)
    def refund(order_id: int, amount: float) -> str:
        CALLS.append(["refund", {"order_id": order_id, "amount": amount}])
        return f"refunded {amount:g} on order {order_id}"

    @agent.tool
    def cancel_order(ctx: RunContext[None], order_id: int) -> str:
        if not ctx.tool_call_approved:
            raise ApprovalRequired(metadata={"why": "cannot be undone"})
        CALLS.append(["cancel_order", {"order_id": order_id}])
        return f"cancelled order {order_id}"

    @agent.tool_plain(requires_approval=True)
    def close_account(customer: str) -> str:
        CALLS.append(["close_account", {"customer": customer}])
        return f"closed {customer}"

    @agent.tool_plain
    def lookup(customer: str) -> str:
        raise CallDeferred

    return agent
