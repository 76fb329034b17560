"""Durable, exactly-once human approval of Pydantic AI deferred tool calls.

A tool declared with ``requires_approval=True`` (or raising ``ApprovalRequired``)
ends the run with a ``DeferredToolRequests`` output. :class:`PydanticAIApprovals`
turns each call in its ``approvals`` into one request of an
:class:`~kaizen.governance.ExternalAgentApprovalManager` and hands back a
:class:`PendingRun`: the message history and the deferred requests, plain JSON to
store anywhere (a column, a cross-channel session, a queue). Once the approvers
decided (in the inbox, the API, ``kaizen approvals approve``, on any instance),
:meth:`~PydanticAIApprovals.resume` continues the run from it, in this process or
another, with ``DeferredToolResults``: an approval is ``ToolApproved`` (with the
approver's edited arguments as ``override_args``), a rejection or a timeout is
``ToolDenied`` whose message, the reason, is what the model sees. (The message
history keeps the model's call as it was made; the tool runs with the edited
arguments.) Pydantic AI continues a run only with a result for every deferred
call, so the run waits until every request is decided.
Each approved call runs once: a resume claims its approvals first
(``claim_approval``), and a second resume of the same pending run raises
``ConcurrencyError`` instead of running a tool again.

To keep a pending run in a Nexus cross-channel session:
``await sessions.update_session_state_async(session_id, {"pending_run":
pending.to_dict()}, "api")``; any instance reads it back with
``PendingRun.from_dict((await sessions.load_session_async(session_id)).state["pending_run"])``.

Example:
    A complete program; a function model stands in for the LLM (no network)::

        import asyncio
        import os
        import uuid

        from pydantic_ai import Agent, DeferredToolRequests
        from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
        from pydantic_ai.models.function import AgentInfo, FunctionModel

        from dataflow import DataFlow
        from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
        from kaizen.integrations.pydantic_ai import PendingRun, PydanticAIApprovals

        database_url = os.environ.get("DATABASE_URL", "sqlite:///kaizen.db")


        def llm(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            \"\"\"Asks to refund 500 on order 42, then repeats what the tool answered.\"\"\"
            if len(messages) == 1:
                return ModelResponse([ToolCallPart("refund", {"order_id": 42, "amount": 500})])
            return ModelResponse([TextPart(str(getattr(messages[-1].parts[0], "content", "")))])


        agent = Agent(FunctionModel(llm), output_type=[str, DeferredToolRequests])


        @agent.tool_plain(requires_approval=True)
        def refund(order_id: int, amount: float) -> str:
            \"\"\"Refund part of an order.\"\"\"
            return f"refunded {amount:g} on order {order_id}"


        async def main() -> None:
            async with DataFlow(database_url) as db:
                storage = ExternalAgentApprovalStorage(db)
                manager = ExternalAgentApprovalManager(storage_backend=storage)
                manager.set_approvers("support-bot", ["lead-456"])
                approvals = PydanticAIApprovals(
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
                print(outcome.result.output)


        asyncio.run(main())

    It prints ``refund {'order_id': 42, 'amount': 500}``, then
    ``refunded 50 on order 42``.
"""

from kaizen.integrations._approvals import PendingApproval, ToolDecision, missing_framework

try:
    import pydantic_ai  # noqa: F401 - the framework must be installed before anything else
except ImportError as exc:  # pragma: no cover - tested in a subprocess without the framework
    raise missing_framework(__name__, "Pydantic AI", "pydantic-ai") from exc

from kaizen.integrations.pydantic_ai.bridge import PydanticAIApprovals
from kaizen.integrations.pydantic_ai.pending import PendingRun, Resolution, RunOutcome

__all__ = [
    "PendingApproval",
    "PendingRun",
    "PydanticAIApprovals",
    "Resolution",
    "RunOutcome",
    "ToolDecision",
]
