"""Durable, exactly-once human approval of OpenAI Agents SDK tool calls.

A tool declared with ``needs_approval`` pauses the run (``result.interruptions``).
:class:`OpenAIAgentsApprovals` turns each paused call into one request of an
:class:`~kaizen.governance.ExternalAgentApprovalManager` and hands back a
:class:`PendingRun`: the run's serialized ``RunState`` and its requests, plain JSON
to store anywhere (a column, a cross-channel session, a queue). Once the approvers
decided (in the inbox, the API, ``kaizen approvals approve``, on any instance),
:meth:`~OpenAIAgentsApprovals.resume` restores the run from it, in this process or
another, and continues it: an approved call runs, a rejected or timed-out one is
refused with the reason as the message the model sees, an undecided one stays
paused.
Each approved call runs once: a resume claims its approvals first
(``claim_approval``), and a second resume of the same pending run raises
``ConcurrencyError`` instead of running a tool again.

Edited arguments: the SDK cannot change the arguments of a paused call (approval
is per call id, and the run checks that the invocation did not change). An
approval of edited arguments therefore refuses the paused call, telling the model
the approved arguments, and records a :class:`Grant`: when the model calls the
same tool again with exactly those arguments (one more model turn), that call is
approved without asking anyone again, once. Any other call asks again.

Store a pending run server-side: it carries the run's approvals, and the SDK does
not authenticate restored state. To keep it in a Nexus cross-channel session:
``await sessions.update_session_state_async(session_id, {"pending_run":
pending.to_dict()}, "api")``; any instance reads it back with
``PendingRun.from_dict((await sessions.load_session_async(session_id)).state["pending_run"])``.

Example:
    A complete program; a scripted model stands in for the LLM (no network)::

        import asyncio
        import os
        import uuid

        from agents import Agent, function_tool, set_tracing_disabled
        from agents.testing import (
            ModelCall,
            ModelStep,
            ScriptedModel,
            assistant_message,
            function_call,
        )

        from dataflow import DataFlow
        from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
        from kaizen.integrations.openai_agents import OpenAIAgentsApprovals, PendingRun

        database_url = os.environ.get("DATABASE_URL", "sqlite:///kaizen.db")
        set_tracing_disabled(True)  # nothing leaves this machine


        @function_tool(needs_approval=True)
        def refund(order_id: int, amount: float) -> str:
            \"\"\"Refund part of an order.\"\"\"
            return f"refunded {amount:g} on order {order_id}"


        def tell_what_the_tool_said(call: ModelCall) -> list[object]:
            return [assistant_message(call.input[-1]["output"])]


        # The model asks to refund 500; told that 50 was approved, it asks for 50.
        model = ScriptedModel(
            [
                [function_call("refund", {"order_id": 42, "amount": 500}, call_id="call-1")],
                [function_call("refund", {"order_id": 42, "amount": 50}, call_id="call-2")],
                ModelStep.respond(tell_what_the_tool_said),
            ]
        )
        agent = Agent(name="support", tools=[refund], model=model)


        async def main() -> None:
            async with DataFlow(database_url) as db:
                storage = ExternalAgentApprovalStorage(db)
                manager = ExternalAgentApprovalManager(storage_backend=storage)
                manager.set_approvers("support-bot", ["lead-456"])
                approvals = OpenAIAgentsApprovals(
                    manager, external_agent_id="support-bot", requested_by="user-123"
                )

                thread_id = f"ticket-{uuid.uuid4()}"  # one per conversation
                outcome = await approvals.run(agent, "Refund order 42", thread_id=thread_id)
                assert outcome.pending is not None
                saved = outcome.pending.to_json()  # store it; any instance resumes it
                [paused] = outcome.pending.approvals
                print(paused.tool_name, paused.arguments)

                # The approver edits the amount (kaizen approvals approve ID --metadata ...)
                request = await manager.get_request(paused.request_id)
                assert request is not None
                edited = {**request.request_metadata, "arguments": {"order_id": 42, "amount": 50}}
                await manager.approve_request(paused.request_id, "lead-456", metadata=edited)

                outcome = await approvals.resume(agent, PendingRun.from_json(saved))
                assert outcome.result is not None and outcome.pending is None
                print(outcome.result.final_output)


        asyncio.run(main())

    It prints ``refund {'order_id': 42, 'amount': 500}``, then
    ``refunded 50 on order 42``.
"""

from kaizen.integrations._approvals import PendingApproval, ToolDecision, missing_framework

try:
    import agents  # noqa: F401 - the SDK must be installed before anything else is imported
except ImportError as exc:  # pragma: no cover - tested in a subprocess without the SDK
    raise missing_framework(__name__, "the OpenAI Agents SDK", "openai-agents") from exc

from kaizen.integrations.openai_agents.bridge import OpenAIAgentsApprovals
from kaizen.integrations.openai_agents.pending import Grant, PendingRun, Resolution, RunOutcome

__all__ = [
    "Grant",
    "OpenAIAgentsApprovals",
    "PendingApproval",
    "PendingRun",
    "Resolution",
    "RunOutcome",
    "ToolDecision",
]
