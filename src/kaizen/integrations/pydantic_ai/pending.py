"""What a Pydantic AI run ended by deferred calls leaves to store, and what resuming gives."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import (
    AgentRunResult,
    DeferredToolRequests,
    DeferredToolResults,
    ModelMessagesTypeAdapter,
)
from pydantic_ai.messages import ModelMessage

from kaizen.governance.models import check_id
from kaizen.integrations._approvals import (
    PendingApproval,
    ToolDecision,
    check_metadata,
    field_of,
    framework_errors,
    load_document,
)

__all__ = ["PendingRun", "Resolution", "RunOutcome"]

_KIND = "kaizen.pydantic-ai.pending-run"
_REQUESTS: TypeAdapter[DeferredToolRequests] = TypeAdapter(DeferredToolRequests)


@dataclass(frozen=True)
class PendingRun:
    """A run ended by deferred tool calls, and the approvals it waits for.

    Attributes:
        thread_id: The caller's id of the conversation (part of each request id).
        messages: The run's message history (``result.all_messages()``).
        requests: The run's ``DeferredToolRequests`` output.
        approvals: One approval request per call in ``requests.approvals``.
        metadata: The caller's metadata of this run's requests.
    """

    thread_id: str
    messages: list[ModelMessage]
    requests: DeferredToolRequests
    approvals: tuple[PendingApproval, ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form (a dict of JSON values; the messages as ``ModelMessagesTypeAdapter``
        dumps them).

        Raises:
            ValidationError: Something in the messages pydantic cannot serialize.
        """
        with framework_errors("cannot serialize the pending run"):
            messages = ModelMessagesTypeAdapter.dump_python(self.messages, mode="json")
            requests = _REQUESTS.dump_python(self.requests, mode="json")
        return {
            "kind": _KIND,
            "version": 1,
            "thread_id": self.thread_id,
            "approvals": [a.to_dict() for a in self.approvals],
            "metadata": self.metadata,
            "messages": messages,
            "requests": requests,
        }

    def to_json(self) -> str:
        """Its JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> PendingRun:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ValidationError: Not a pending run of this bridge.
        """
        fields = load_document(data, _KIND)
        with framework_errors("a pending run's messages or requests are invalid"):
            messages = ModelMessagesTypeAdapter.validate_python(field_of(fields, "messages", list))
            requests = _REQUESTS.validate_python(field_of(fields, "requests", dict))
        return cls(
            thread_id=check_id("thread_id", fields.get("thread_id")),
            messages=messages,
            requests=requests,
            approvals=tuple(
                PendingApproval.from_dict(a) for a in field_of(fields, "approvals", list)
            ),
            metadata=check_metadata(fields.get("metadata"), "a pending run's metadata"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> PendingRun:
        """Read what :meth:`to_json` wrote.

        Raises:
            ValidationError: Not a pending run of this bridge.
        """
        return cls.from_dict(text)


@dataclass
class Resolution:
    """The decisions on a pending run, as ``DeferredToolResults``.

    Attributes:
        results: An approval per decided call (pass it as ``deferred_tool_results``
            with ``message_history=pending.messages``); undecided calls are not in it.
        decisions: What was decided.
        undecided: The approvals still waiting: Pydantic AI needs a result for
            every deferred call, so the run can continue only when this is empty
            (and results for any external ``requests.calls`` are added).
    """

    results: DeferredToolResults
    decisions: list[ToolDecision]
    undecided: list[PendingApproval]


@dataclass
class RunOutcome:
    """Where a run stands after :meth:`PydanticAIApprovals.run` or ``resume``.

    Attributes:
        result: The last agent run's result (None when ``resume`` ran nothing
            because calls are undecided).
        pending: The pending run, if it is waiting (store it); None when it finished.
        decisions: The decisions ``resume`` read.
    """

    result: AgentRunResult[Any] | None
    pending: PendingRun | None
    decisions: list[ToolDecision] = field(default_factory=list)
