"""The bridge: deferred calls to approval requests, decisions to ``DeferredToolResults``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic_ai import (
    AgentRunResult,
    DeferredToolRequests,
    DeferredToolResults,
    ToolApproved,
    ToolDenied,
)
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.messages import ToolCallPart
from pydantic_core import to_jsonable_python

from dataflow.errors import ValidationError
from dataflow.jsonvalues import describe
from kaizen.governance.approval_manager import ExternalAgentApprovalManager
from kaizen.governance.models import check_id
from kaizen.integrations._approvals import (
    ApprovalDesk,
    ToolCall,
    check_metadata,
    check_wait,
    framework_errors,
    parse_arguments,
)
from kaizen.integrations.pydantic_ai.pending import PendingRun, Resolution, RunOutcome

__all__ = ["PydanticAIApprovals"]

FRAMEWORK = "pydantic-ai"


class PydanticAIApprovals:
    """Routes the deferred tool calls of Pydantic AI runs through approval requests.

    Args:
        manager: The approval manager (with storage, so that every instance sees
            the requests and decisions).
        external_agent_id: The agent the requests are routed by (its approvers,
            quorum and timeout), or a function of the tool name giving it.
        requested_by: Who the requests are made for (never one of their approvers).
        metadata: Shown to the approvers with every request, e.g.
            ``{"environment": "production"}`` (a JSON object; the bridge's own keys
            ``framework``, ``thread_id``, ``tool_name``, ``call_id``,
            ``arguments`` and ``tool_metadata`` are added).

    Raises:
        ValidationError: A bad argument.
    """

    def __init__(
        self,
        manager: ExternalAgentApprovalManager,
        *,
        external_agent_id: str | Callable[[str], str],
        requested_by: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._desk = ApprovalDesk(
            manager,
            framework=FRAMEWORK,
            external_agent_id=external_agent_id,
            requested_by=requested_by,
            metadata=metadata,
        )

    async def run(
        self,
        agent: AbstractAgent[Any, Any],
        user_prompt: str | None = None,
        *,
        thread_id: str,
        metadata: Mapping[str, Any] | None = None,
        **run_options: Any,
    ) -> RunOutcome:
        """``agent.run(user_prompt, **run_options)``, then :meth:`submit` if it deferred calls.

        Args:
            agent: The agent (``DeferredToolRequests`` among its output types).
            user_prompt: The user's prompt.
            thread_id: Your id of this conversation: unique among conversations,
                the same on every resume (each request id is derived from it and
                the call id, so a call id must not repeat within a thread: the
                models' ids do not; give a scripted test model's calls distinct ids).
            metadata: Shown to the approvers with this run's requests.
            **run_options: Passed to ``agent.run`` (deps, message_history...).

        Returns:
            The result, and the pending run when it deferred calls.

        Raises:
            ValidationError, DuplicateKeyError, ApprovalConfigurationError: As
                :meth:`submit` says. What ``agent.run`` raises propagates unchanged.
        """
        extra = check_metadata(metadata, "metadata")
        check_id("thread_id", thread_id)
        result = await agent.run(user_prompt, **run_options)
        return RunOutcome(result, await self.submit(result, thread_id=thread_id, metadata=extra))

    async def resume(
        self,
        agent: AbstractAgent[Any, Any],
        pending: PendingRun | str | Mapping[str, Any],
        *,
        wait: float = 0.0,
        **run_options: Any,
    ) -> RunOutcome:
        """Continue the run with the decisions, once every approval is decided.

        Args:
            agent: The agent (a new instance is fine: same tools).
            pending: The pending run (or its JSON text or dict).
            wait: Seconds to wait, in all, for undecided requests (0: do not wait).
            **run_options: Passed to ``agent.run``; a ``deferred_tool_results``
                given here (results of external ``requests.calls``) is merged
                with the approvals.

        Returns:
            The new result and the pending run if it deferred calls again; or,
            while some call is undecided, no result and the same pending run.

        Raises:
            ValidationError: ``pending`` is not a pending run of this bridge or
                does not match its requests; external calls have no results;
                ``message_history`` among ``run_options``.
            ApprovalNotFoundError: A request was deleted. What ``agent.run``
                raises propagates unchanged.
            ConcurrencyError: An approved call was claimed already: this pending run
                was resumed before (or is being resumed elsewhere); its tool does
                not run twice.
        """
        pending = pending if isinstance(pending, PendingRun) else PendingRun.from_dict(pending)
        if "message_history" in run_options:
            raise ValidationError("resume continues the pending run's own message history")
        given = run_options.pop("deferred_tool_results", None)
        if given is not None and not isinstance(given, DeferredToolResults):
            raise ValidationError(
                f"deferred_tool_results must be DeferredToolResults, got {describe(given)}"
            )
        resolution = await self.resolve(pending, wait=wait, claim=False)
        if resolution.undecided:
            return RunOutcome(None, pending, resolution.decisions)
        results = DeferredToolResults()
        if given is not None:
            results.update(given)
        results.update(resolution.results)
        missing = sorted({c.tool_call_id for c in pending.requests.calls} - set(results.calls))
        if missing:
            raise ValidationError(
                f"the run also waits for external tool calls {missing}: pass their results as "
                "deferred_tool_results=DeferredToolResults(calls={...})"
            )
        await self._claim(resolution)  # checked: the run goes on, each approval acted on once
        result = await agent.run(
            message_history=list(pending.messages), deferred_tool_results=results, **run_options
        )
        again = await self.submit(result, thread_id=pending.thread_id, metadata=pending.metadata)
        return RunOutcome(result, again, resolution.decisions)

    async def submit(
        self,
        result: AgentRunResult[Any],
        *,
        thread_id: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> PendingRun | None:
        """Create one approval request per call awaiting approval (asking again is harmless).

        Args:
            result: The agent run's result.
            thread_id: Your id of the conversation (see :meth:`run`).
            metadata: Shown to the approvers with these requests.

        Returns:
            The pending run to store, or None when the output is not
            ``DeferredToolRequests`` (the run finished).

        Raises:
            ValidationError: A bad thread id or metadata, arguments or tool
                metadata that are not JSON.
            DuplicateKeyError: This thread's call ids were already asked with
                other content (a thread id reused for another conversation).
            ApprovalConfigurationError: The agent has no approvers configured.
        """
        extra = check_metadata(metadata, "metadata")
        check_id("thread_id", thread_id)
        if not isinstance(result, AgentRunResult):
            raise ValidationError(f"result must be an AgentRunResult, got {describe(result)}")
        requests = result.output
        if not isinstance(requests, DeferredToolRequests):
            return None
        with framework_errors("a deferred call's metadata is not JSON"):
            calls = [_tool_call(part, requests) for part in requests.approvals]
        approvals = await self._desk.ask(thread_id, calls, extra)
        return PendingRun(thread_id, result.all_messages(), requests, tuple(approvals), extra)

    async def resolve(
        self, pending: PendingRun, *, wait: float = 0.0, claim: bool = True
    ) -> Resolution:
        """The decisions made so far, as ``DeferredToolResults``.

        For your own ``agent.run`` (or ``run_stream``) call, once
        ``undecided`` is empty; :meth:`resume` does all of it. Once every call is
        decided, the approvals are claimed (``claim``): use the results once, since no
        other resolve of this run gets them.

        Args:
            pending: The pending run.
            wait: Seconds to wait, in all, for undecided requests.
            claim: Whether to claim the approvals when every call is decided.

        Returns:
            The results of the decided calls, and what was (not) decided.

        Raises:
            ValidationError: ``pending`` does not match its requests.
            ApprovalNotFoundError: A request was deleted.
            ConcurrencyError: An approval was claimed already: this run was resumed
                elsewhere (its tool must not run twice).
        """
        if not isinstance(pending, PendingRun):
            raise ValidationError(f"pending must be a PendingRun, got {describe(pending)}")
        check_wait(wait)
        deferred = {
            part.tool_call_id: _tool_call(part, pending.requests)
            for part in pending.requests.approvals
        }
        asked = {a.call_id: (a.tool_name, a.arguments) for a in pending.approvals}
        if asked != {k: (c.tool_name, c.arguments) for k, c in deferred.items()}:
            raise ValidationError(
                "the pending run's approvals are not its deferred calls: it was altered"
            )
        decisions, undecided = await self._desk.decide(pending.thread_id, pending.approvals, wait)
        resolution = Resolution(DeferredToolResults(), decisions, undecided)
        if claim:
            await self._claim(resolution)
        results = resolution.results = DeferredToolResults()
        for decision in decisions:
            call_id = decision.call_id
            if decision.approved:
                # Always the approved arguments, never the history's: only they were approved.
                results.approvals[call_id] = ToolApproved(override_args=decision.arguments)
            else:
                results.approvals[call_id] = ToolDenied(decision.message or "")
            results.metadata[call_id] = {
                "approval_request_id": decision.request_id,
                "decided_by": decision.decided_by,
            }
            if decision.decided_by is not None:
                results.answered_by[call_id] = decision.decided_by
        return resolution

    async def _claim(self, resolution: Resolution) -> None:
        """Claim the approved calls of a fully decided resolution (see ``ApprovalDesk.claim``)."""
        if not resolution.undecided:
            await self._desk.claim([d.request_id for d in resolution.decisions if d.approved])


def _tool_call(part: ToolCallPart, requests: DeferredToolRequests) -> ToolCall:
    """A deferred call as the shared layer takes it (with the tool's metadata, as JSON)."""
    arguments, raw = parse_arguments(part.args)
    extra = requests.metadata.get(part.tool_call_id)
    return ToolCall(
        call_id=part.tool_call_id,
        tool_name=part.tool_name,
        arguments=arguments,
        raw_arguments=raw,
        tool_metadata=None if extra is None else to_jsonable_python(extra),
    )
