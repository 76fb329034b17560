"""The desk: one approval request per paused call, and its decision read back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dataflow.errors import ConcurrencyError, DuplicateKeyError, ValidationError
from dataflow.jsonvalues import check_json, check_text, describe
from dataflow.values import utcnow
from kaizen.governance.approval_manager import ExternalAgentApprovalManager
from kaizen.governance.errors import ApprovalNotFoundError
from kaizen.governance.models import ApprovalStatus, ExternalAgentApprovalRequest, check_id
from kaizen.integrations._approvals.values import (
    PendingApproval,
    ToolCall,
    ToolDecision,
    check_call_id,
    check_metadata,
    check_wait,
    request_id_for,
)

__all__ = ["ApprovalDesk", "read_decision"]

#: The keys an approver's edited version must leave as they were.
_IDENTITY_KEYS = ("framework", "thread_id", "tool_name", "call_id")
_TIMED_OUT = "Nobody approved this tool call before its deadline, so it was not run."
_REJECTED = "A human reviewer rejected this tool call."


class ApprovalDesk:
    """Creates the requests of paused calls and reads their decisions, for one framework.

    Args:
        manager: The approval manager requests go through.
        framework: The framework's name in the metadata and the request ids.
        external_agent_id: The agent the requests are routed by, or a function of
            the tool name giving it.
        requested_by: Who the requests are made for.
        metadata: Shown to the approvers with every request (a JSON object).

    Raises:
        ValidationError: An argument of the wrong type, an empty id, metadata that
            is not a JSON object or uses the bridge's keys.
    """

    def __init__(
        self,
        manager: ExternalAgentApprovalManager,
        *,
        framework: str,
        external_agent_id: str | Callable[[str], str],
        requested_by: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(manager, ExternalAgentApprovalManager):
            raise ValidationError(
                f"manager must be an ExternalAgentApprovalManager, got {describe(manager)}"
            )
        if not callable(external_agent_id):
            check_id("external_agent_id", external_agent_id)
        self.manager = manager
        self.framework = framework
        self.requested_by = check_id("requested_by", requested_by)
        self.metadata = check_metadata(metadata, "metadata")
        self._agent = external_agent_id

    def agent_for(self, tool_name: str) -> str:
        """The external agent id a call of ``tool_name`` is routed by."""
        if isinstance(self._agent, str):
            return self._agent
        return check_id(
            f"the external_agent_id given for tool {tool_name!r}", self._agent(tool_name)
        )

    def metadata_for(
        self, thread_id: str, call: ToolCall, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The request metadata of ``call`` (see the module's docstring)."""
        metadata: dict[str, Any] = {
            **self.metadata,
            **extra,
            "framework": self.framework,
            "thread_id": thread_id,
            "tool_name": call.tool_name,
            "call_id": call.call_id,
            "arguments": call.arguments,
        }
        if call.raw_arguments is not None:
            metadata["raw_arguments"] = call.raw_arguments
        if call.tool_metadata is not None:
            metadata["tool_metadata"] = call.tool_metadata
        check_json(metadata, f"the request of tool call {call.call_id!r}")
        return metadata

    async def ask(
        self, thread_id: str, calls: Sequence[ToolCall], extra: Mapping[str, Any]
    ) -> list[PendingApproval]:
        """One request per call, created unless it exists (asking again is harmless).

        Raises:
            ValidationError: A bad thread id, call id or tool name, two calls with
                one id, arguments or metadata that are not JSON.
            DuplicateKeyError: A request of this thread and call id exists with
                other content: the thread id was used for another conversation.
            ApprovalConfigurationError: The agent has no approvers configured.
        """
        check_id("thread_id", thread_id)
        ids = [call.call_id for call in calls]
        if len(set(ids)) != len(ids):
            raise ValidationError(f"the paused calls must have distinct call ids, got {ids}")
        planned = []
        for call in calls:  # every call checked before any is asked: all or nothing
            check_text(check_call_id(call.call_id), "call id")
            check_id("tool name", call.tool_name)
            request_id = request_id_for(self.framework, thread_id, call.call_id)
            planned.append(
                (
                    call,
                    request_id,
                    self.metadata_for(thread_id, call, extra),
                    self.agent_for(call.tool_name),
                )
            )
        asked = []
        for call, request_id, metadata, agent in planned:
            stored = await self.manager.get_request(request_id)
            if stored is None:
                await self.manager.request_approval(
                    agent, self.requested_by, metadata, request_id=request_id
                )
            elif (stored.external_agent_id, stored.requested_by, stored.request_metadata) != (
                agent,
                self.requested_by,
                metadata,
            ):
                raise DuplicateKeyError(
                    f"approval request {request_id} of thread {thread_id!r}, call "
                    f"{call.call_id!r} exists with other content: use a new thread_id "
                    "for each conversation"
                )
            asked.append(PendingApproval(request_id, call.call_id, call.tool_name, call.arguments))
        return asked

    async def decide(
        self, thread_id: str, approvals: Sequence[PendingApproval], wait: float
    ) -> tuple[list[ToolDecision], list[PendingApproval]]:
        """The decisions made so far, and the approvals still undecided.

        Waits up to ``wait`` seconds in all for undecided requests (woken by the
        decision on PostgreSQL). A request found past its deadline is escalated or
        timed out first, as its policy says.

        Raises:
            ApprovalNotFoundError: A request was deleted.
            ValidationError: A request is not the one of its call (the pending run
                was altered).
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + check_wait(wait)
        decisions: list[ToolDecision] = []
        undecided: list[PendingApproval] = []
        for approval in approvals:
            request = await self._load(thread_id, approval)
            overdue = request.deadline_at is not None and request.deadline_at <= utcnow()
            if request.status is ApprovalStatus.PENDING and (wait > 0 or overdue):
                left = max(0.0, end - loop.time())
                await self.manager.wait_for_approval(approval.request_id, timeout=left)
                request = await self._load(thread_id, approval)
            decision = read_decision(request, approval)
            if decision is None:
                undecided.append(approval)
            else:
                decisions.append(decision)
        return decisions, undecided

    async def claim(self, request_ids: Sequence[str]) -> None:
        """Claim the approvals about to be acted on, all or none: each is acted on
        once, however many processes resume the same pending run.

        Raises:
            ConcurrencyError: One was claimed already (by another resume of this run,
                or an earlier one); the ones this call claimed are given back.
        """
        attempt = f"{self.framework}-resume-{uuid.uuid4()}"
        won: list[str] = []
        for request_id in sorted(set(request_ids)):
            if await self.manager.claim_approval(request_id, attempt):
                won.append(request_id)
                continue
            for held in won:
                await self.manager.release_claim(held, attempt)
            raise ConcurrencyError(
                f"the call of approval request {request_id} was already carried out by "
                "another resume of this run: resume a pending run once (the one the last "
                "resume returned)"
            )

    async def approved_arguments(
        self, thread_id: str, request_id: str, tool_name: str
    ) -> dict[str, Any] | None:
        """The arguments request ``request_id`` approved a call of ``tool_name`` of this
        thread with, or None (no such request, not approved, another thread or tool)."""
        request = await self.manager.get_request(request_id)
        if request is None:
            return None
        metadata = request.request_metadata
        call_id = metadata.get("call_id")
        if (
            not isinstance(call_id, str)
            or request_id != request_id_for(self.framework, thread_id, call_id)
            or metadata.get("tool_name") != tool_name
        ):
            return None
        asked = PendingApproval(request_id, call_id, tool_name, metadata.get("arguments", {}))
        decision = read_decision(request, asked)
        return decision.arguments if decision is not None and decision.approved else None

    async def _load(
        self, thread_id: str, approval: PendingApproval
    ) -> ExternalAgentApprovalRequest:
        request_id = approval.request_id
        expected = request_id_for(self.framework, thread_id, approval.call_id)
        request = await self.manager.get_request(request_id)
        if request is None:
            raise ApprovalNotFoundError(request_id)
        metadata = request.request_metadata
        asked = {
            "framework": self.framework,
            "thread_id": thread_id,
            "tool_name": approval.tool_name,
            "call_id": approval.call_id,
            "arguments": approval.arguments,
        }
        if request_id != expected or any(metadata.get(k) != v for k, v in asked.items()):
            raise ValidationError(
                f"approval request {request_id} is not the request of call "
                f"{approval.call_id!r} of thread {thread_id!r}: the pending run was altered"
            )
        return request


def read_decision(
    request: ExternalAgentApprovalRequest, approval: PendingApproval
) -> ToolDecision | None:
    """``request``'s decision on ``approval``'s call, or None while it is pending."""
    status = request.status
    if status is ApprovalStatus.PENDING:
        return None

    def decided(approved: bool, **fields: Any) -> ToolDecision:
        return ToolDecision(
            request.id,
            approval.call_id,
            approval.tool_name,
            status,
            approved,
            decided_by=request.approved_by,
            **fields,
        )

    if status is ApprovalStatus.TIMEOUT:
        return decided(False, message=_TIMED_OUT)
    if status is ApprovalStatus.REJECTED:
        return decided(False, message=request.rejection_reason or _REJECTED)
    version = request.approved_metadata
    if version is None:
        return decided(True, arguments=approval.arguments)
    changed = [k for k in _IDENTITY_KEYS if version.get(k) != request.request_metadata.get(k)]
    arguments = version.get("arguments")
    if changed or not isinstance(arguments, dict):
        what = f"changed {', '.join(changed)}" if changed else "has no arguments object"
        return decided(
            False,
            message=f"The approved version of this tool call {what} (only the arguments "
            "can be edited), so it was not run.",
        )
    return decided(True, arguments=arguments, edited=arguments != approval.arguments)
