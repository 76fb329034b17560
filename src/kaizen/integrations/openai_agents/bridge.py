"""The bridge: paused calls to approval requests, decisions back into the run state."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, Unpack

from agents import Agent, Runner, RunResult, RunResultStreaming, RunState, ToolApprovalItem
from agents.run_config import RunOptions

from dataflow.errors import ValidationError
from dataflow.jsonvalues import describe
from kaizen.governance.approval_manager import ExternalAgentApprovalManager
from kaizen.governance.models import check_id
from kaizen.integrations._approvals import (
    ApprovalDesk,
    ToolCall,
    ToolDecision,
    check_metadata,
    check_wait,
    framework_errors,
    parse_arguments,
)
from kaizen.integrations.openai_agents.pending import Grant, PendingRun, Resolution, RunOutcome

__all__ = ["OpenAIAgentsApprovals"]

FRAMEWORK = "openai-agents"
#: What ``submit`` takes: a paused run's result, or its state.
Paused: TypeAlias = RunResult | RunResultStreaming | RunState[Any, Any]
ContextSerializer = Callable[[Any], Mapping[str, Any]]
ContextDeserializer = Callable[[Mapping[str, Any]], Any]


class OpenAIAgentsApprovals:
    """Routes the paused tool calls of OpenAI Agents SDK runs through approval requests.

    Args:
        manager: The approval manager (with storage, so that every instance sees
            the requests and decisions).
        external_agent_id: The agent the requests are routed by (its approvers,
            quorum and timeout), or a function of the tool name giving it.
        requested_by: Who the requests are made for (never one of their approvers).
        metadata: Shown to the approvers with every request, e.g.
            ``{"environment": "production"}`` (a JSON object; the bridge's own keys
            ``framework``, ``thread_id``, ``tool_name``, ``call_id`` and
            ``arguments`` are added).
        context_serializer: Turns a run context that is not a mapping into one,
            for the stored state (``RunState.to_json``'s ``context_serializer``).
        context_deserializer: Rebuilds that context when the state is restored.

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
        context_serializer: ContextSerializer | None = None,
        context_deserializer: ContextDeserializer | None = None,
    ) -> None:
        self._desk = ApprovalDesk(
            manager,
            framework=FRAMEWORK,
            external_agent_id=external_agent_id,
            requested_by=requested_by,
            metadata=metadata,
        )
        self._serializer = context_serializer
        self._deserializer = context_deserializer

    async def run(
        self,
        agent: Agent[Any],
        input: str | list[Any],
        *,
        thread_id: str,
        metadata: Mapping[str, Any] | None = None,
        **run_options: Unpack[RunOptions[Any]],
    ) -> RunOutcome:
        """``Runner.run(agent, input, **run_options)``, then :meth:`submit` if it paused.

        Args:
            agent: The starting agent.
            input: The user's input.
            thread_id: Your id of this conversation: unique among conversations,
                the same on every resume (each request id is derived from it and
                the call id, so a call id must not repeat within a thread: the
                models' ids do not; give a scripted test model's calls distinct ids).
            metadata: Shown to the approvers with this run's requests.
            **run_options: Passed to ``Runner.run`` (context, max_turns, session...).

        Returns:
            The result, and the pending run when it paused.

        Raises:
            ValidationError, DuplicateKeyError, ApprovalConfigurationError: As
                :meth:`submit` says. What ``Runner.run`` raises propagates unchanged.
        """
        extra = check_metadata(metadata, "metadata")
        check_id("thread_id", thread_id)
        result = await Runner.run(agent, input, **run_options)
        return await self._settle(agent, result, thread_id, extra, [], [], run_options)

    async def resume(
        self,
        agent: Agent[Any],
        pending: PendingRun | str | Mapping[str, Any],
        *,
        wait: float = 0.0,
        **run_options: Unpack[RunOptions[Any]],
    ) -> RunOutcome:
        """Apply the decisions made so far and continue the run.

        Undecided calls stay paused: when nothing was decided the run is not
        continued (``result`` is None, ``pending`` the same); otherwise the
        decided calls are carried out and the run pauses again on the rest.

        Args:
            agent: The run's starting agent (a new instance is fine: same name and tools).
            pending: The pending run (or its JSON text or dict).
            wait: Seconds to wait, in all, for undecided requests (0: do not wait).
            **run_options: Passed to ``Runner.run``.

        Returns:
            The new result, and the pending run if it paused again.

        Raises:
            ValidationError: ``pending`` is not a pending run of this bridge, or
                does not match its state or its requests.
            ApprovalNotFoundError: A request was deleted. What ``Runner.run``
                raises propagates unchanged.
            ConcurrencyError: An approved call was claimed already: this pending run
                was resumed before (or is being resumed elsewhere); its tool does
                not run twice.
        """
        pending = pending if isinstance(pending, PendingRun) else PendingRun.from_dict(pending)
        resolution = await self.resolve(agent, pending, wait=wait)
        if not resolution.decisions and pending.approvals:
            return RunOutcome(None, pending)
        result = await Runner.run(agent, resolution.state, **run_options)
        return await self._settle(
            agent,
            result,
            pending.thread_id,
            pending.metadata,
            resolution.grants,
            resolution.decisions,
            run_options,
        )

    async def _settle(
        self,
        agent: Agent[Any],
        result: RunResult,
        thread_id: str,
        metadata: dict[str, Any],
        grants: list[Grant],
        decisions: list[ToolDecision],
        run_options: RunOptions[Any],
    ) -> RunOutcome:
        """Submit a paused result; continue at once while grants cover every pause."""
        while True:
            state, pending = await self._submit(result, thread_id, metadata, grants)
            if state is None or pending is None or pending.approvals:
                return RunOutcome(result, pending, decisions)
            # Grants covered every paused call: nobody needs asking, go on.
            result = await Runner.run(agent, state, **run_options)
            grants = list(pending.grants)

    async def submit(
        self,
        paused: Paused,
        *,
        thread_id: str,
        metadata: Mapping[str, Any] | None = None,
        grants: Sequence[Grant] = (),
    ) -> PendingRun | None:
        """Create one approval request per paused call (asking again is harmless).

        Args:
            paused: The run's result (or its ``RunState``).
            thread_id: Your id of the conversation (see :meth:`run`).
            metadata: Shown to the approvers with these requests.
            grants: Approved edited arguments (``Resolution.grants``): paused calls
                they cover are approved in the state instead of asking.

        Returns:
            The pending run to store, or None when the run did not pause.

        Raises:
            ValidationError: A bad thread id or metadata, a paused call without a
                call id, arguments that are not JSON, a state the SDK cannot serialize.
            DuplicateKeyError: This thread's call ids were already asked with
                other content (a thread id reused for another conversation).
            ApprovalConfigurationError: The agent has no approvers configured.
        """
        extra = check_metadata(metadata, "metadata")
        check_id("thread_id", thread_id)
        for grant in grants:
            if not isinstance(grant, Grant):
                raise ValidationError(f"grants must be Grant objects, got {describe(grant)}")
        return (await self._submit(paused, thread_id, extra, list(grants)))[1]

    async def _submit(
        self,
        paused: Paused,
        thread_id: str,
        metadata: dict[str, Any],
        grants: list[Grant],
    ) -> tuple[RunState[Any, Any] | None, PendingRun | None]:
        if not isinstance(paused, RunResult | RunResultStreaming | RunState):
            raise ValidationError(
                "a paused run is a RunResult, RunResultStreaming or RunState, "
                f"got {describe(paused)}"
            )
        if not isinstance(paused, RunState) and not paused.interruptions:
            return None, None
        with framework_errors("cannot read the paused run"):
            state = paused if isinstance(paused, RunState) else paused.to_state()
            items = state.get_interruptions()
        if not items:
            return None, None
        unused = list(grants)
        calls = []
        for item in items:
            call = _tool_call(item)
            if not await self._granted(state, item, call, thread_id, unused):
                calls.append(call)
        approvals = await self._desk.ask(thread_id, calls, metadata)
        with framework_errors("cannot serialize the run state"):
            serialized = state.to_json(context_serializer=self._serializer)
        pending = PendingRun(thread_id, serialized, tuple(approvals), tuple(unused), metadata)
        return state, pending

    async def _granted(
        self,
        state: RunState[Any, Any],
        item: ToolApprovalItem,
        call: ToolCall,
        thread_id: str,
        unused: list[Grant],
    ) -> bool:
        """Approve ``item`` in ``state`` if a grant covers it (using the grant up)."""
        grant = next(
            (g for g in unused if (g.tool_name, g.arguments) == (call.tool_name, call.arguments)),
            None,
        )
        if grant is None:
            return False
        # Only an approval recorded in the store vouches for a grant.
        approved = await self._desk.approved_arguments(thread_id, grant.request_id, grant.tool_name)
        if approved != grant.arguments:
            raise ValidationError(
                f"grant of request {grant.request_id} is not an approval of these "
                f"arguments of {grant.tool_name!r} in thread {thread_id!r}"
            )
        await self._desk.claim([grant.request_id])  # a grant is used once, whoever resumes
        unused.remove(grant)
        with framework_errors("cannot approve the paused call"):
            state.approve(item)
        return True

    async def resolve(
        self, agent: Agent[Any], pending: PendingRun, *, wait: float = 0.0
    ) -> Resolution:
        """Restore the run's state and apply the decisions made so far to it.

        For your own ``Runner.run`` or ``Runner.run_streamed`` call (then
        :meth:`submit` its result with ``grants=resolution.grants``);
        :meth:`resume` does all of it. The approved calls are claimed: run the state
        once, since no other resolve of this run gets them.

        Args:
            agent: The run's starting agent.
            pending: The pending run.
            wait: Seconds to wait, in all, for undecided requests.

        Returns:
            The state with the decisions applied, and what was (not) decided.

        Raises:
            ValidationError: The state cannot be restored, or the pending run does
                not match its state or its requests.
            ApprovalNotFoundError: A request was deleted.
            ConcurrencyError: An approved call was claimed already: this run was
                resumed elsewhere (its tool must not run twice).
        """
        if not isinstance(pending, PendingRun):
            raise ValidationError(f"pending must be a PendingRun, got {describe(pending)}")
        check_wait(wait)
        with framework_errors("cannot restore the run state"):
            state = await RunState.from_json(
                agent, copy.deepcopy(pending.state), context_deserializer=self._deserializer
            )
            items = {_tool_call(item).call_id: item for item in state.get_interruptions()}
        for approval in pending.approvals:
            item = items.get(approval.call_id)
            if item is None or _tool_call(item).arguments != approval.arguments:
                raise ValidationError(
                    f"the run state has no paused call {approval.call_id!r} of "
                    f"{approval.tool_name!r} with these arguments: the pending run was altered"
                )
        decisions, undecided = await self._desk.decide(pending.thread_id, pending.approvals, wait)
        # The calls about to run: each approval acted on once, whoever resumes.
        await self._desk.claim([d.request_id for d in decisions if d.approved and not d.edited])
        grants = list(pending.grants)
        for decision in decisions:
            item = items[decision.call_id]
            with framework_errors("cannot apply the decision to the run state"):
                if decision.approved and not decision.edited:
                    state.approve(item)
                elif decision.approved:
                    assert decision.arguments is not None  # an approval carries them
                    grants.append(
                        Grant(decision.request_id, decision.tool_name, decision.arguments)
                    )
                    state.reject(item, rejection_message=_call_again(decision))
                else:
                    state.reject(item, rejection_message=decision.message)
        return Resolution(state, decisions, undecided, grants)


def _tool_call(item: ToolApprovalItem) -> ToolCall:
    """What a paused call asks for, as the shared layer takes it."""
    arguments, raw = parse_arguments(item.arguments)
    name = item.name
    return ToolCall(
        call_id=item.call_id or "",
        tool_name=name if name is not None else "",
        arguments=arguments,
        raw_arguments=raw,
    )


def _call_again(decision: ToolDecision) -> str:
    """What the model is told when the approver changed the arguments."""
    arguments = json.dumps(decision.arguments, ensure_ascii=False, sort_keys=True)
    return (
        "A human reviewer did not approve these arguments but approved the call with "
        f"different ones. To go ahead, call {decision.tool_name} again with exactly these "
        f"arguments: {arguments}"
    )
