"""What a paused OpenAI Agents SDK run leaves to store, and what resuming it gives."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents import RunResult, RunState

from dataflow.errors import ValidationError
from dataflow.jsonvalues import describe
from kaizen.governance.models import check_id
from kaizen.integrations._approvals import (
    PendingApproval,
    ToolDecision,
    check_metadata,
    field_of,
    load_document,
)

__all__ = ["Grant", "PendingRun", "Resolution", "RunOutcome"]

_KIND = "kaizen.openai-agents.pending-run"


@dataclass(frozen=True)
class Grant:
    """An approval of edited arguments, waiting for the model to call the tool with them.

    Attributes:
        request_id: The approval request that approved them.
        tool_name: The tool.
        arguments: The approved arguments: a call of the tool with exactly these
            is approved (once) without a new request.
    """

    request_id: str
    tool_name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form."""
        return {
            "request_id": self.request_id,
            "tool_name": self.tool_name,
            "arguments": self.arguments,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Grant:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ValidationError: Not such a dict.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(f"a grant must be a dict, got {describe(data)}")
        return cls(
            request_id=field_of(data, "request_id", str),
            tool_name=field_of(data, "tool_name", str),
            arguments=dict(field_of(data, "arguments", dict)),
        )


@dataclass(frozen=True)
class PendingRun:
    """A paused run: its serialized state and the approvals it waits for (plain JSON).

    Attributes:
        thread_id: The caller's id of the conversation (part of each request id).
        state: ``RunState.to_json()`` of the paused run.
        approvals: The paused calls waiting for a human, one request each (empty
            when every paused call was covered by a grant: resume runs at once).
        grants: Approved edited arguments not yet called (see :class:`Grant`).
        metadata: The caller's metadata of this run's requests.
    """

    thread_id: str
    state: dict[str, Any]
    approvals: tuple[PendingApproval, ...]
    grants: tuple[Grant, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form (a dict of JSON values)."""
        return {
            "kind": _KIND,
            "version": 1,
            "thread_id": self.thread_id,
            "approvals": [a.to_dict() for a in self.approvals],
            "grants": [g.to_dict() for g in self.grants],
            "metadata": self.metadata,
            "state": self.state,
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
        return cls(
            thread_id=check_id("thread_id", fields.get("thread_id")),
            state=dict(field_of(fields, "state", dict)),
            approvals=tuple(
                PendingApproval.from_dict(a) for a in field_of(fields, "approvals", list)
            ),
            grants=tuple(Grant.from_dict(g) for g in field_of(fields, "grants", list)),
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
    """The decisions on a pending run, applied to its restored state.

    Attributes:
        state: The restored ``RunState``: resume with ``Runner.run(agent, state)``.
        decisions: What was decided (approved calls are approved in ``state``,
            the others rejected with their message).
        undecided: The approvals still waiting (left paused in ``state``).
        grants: The grants to pass to :meth:`OpenAIAgentsApprovals.submit` when
            the resumed run pauses again.
    """

    state: RunState[Any, Any]
    decisions: list[ToolDecision]
    undecided: list[PendingApproval]
    grants: list[Grant]


@dataclass
class RunOutcome:
    """Where a run stands after :meth:`OpenAIAgentsApprovals.run` or ``resume``.

    Attributes:
        result: The last ``Runner.run`` result (None when ``resume`` found nothing
            decided and ran nothing).
        pending: The run's pending approvals, if it is paused (store it); None
            when the run finished.
        decisions: The decisions ``resume`` applied.
    """

    result: RunResult | None
    pending: PendingRun | None
    decisions: list[ToolDecision] = field(default_factory=list)
