"""The values the bridges share: paused calls, pending approvals, decisions, and the
checks and conversions every bridge applies to its input."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dataflow.errors import DataFlowError, ValidationError
from dataflow.jsonvalues import check_json, describe
from kaizen.governance.models import ApprovalStatus

__all__ = [
    "PendingApproval",
    "RESERVED_KEYS",
    "ToolCall",
    "ToolDecision",
    "check_call_id",
    "check_metadata",
    "check_wait",
    "field_of",
    "framework_errors",
    "load_document",
    "missing_framework",
    "parse_arguments",
    "request_id_for",
]

#: The metadata keys the bridges write; the caller's metadata may not use them.
RESERVED_KEYS = frozenset(
    {
        "framework",
        "thread_id",
        "tool_name",
        "call_id",
        "arguments",
        "raw_arguments",
        "tool_metadata",
    }
)


def missing_framework(module: str, framework: str, extra: str) -> ImportError:
    """The ImportError of a bridge whose framework is not installed."""
    return ImportError(
        f"{module} needs {framework}, which is not installed: "
        f"pip install 'kaizen-dataflow[{extra}]'"
    )


@contextmanager
def framework_errors(what: str) -> Iterator[None]:
    """Re-raise what a framework raises on bad data as our ValidationError (ours pass)."""
    try:
        yield
    except DataFlowError:
        raise
    except Exception as exc:
        raise ValidationError(f"{what}: {type(exc).__name__}: {exc}") from exc


def request_id_for(framework: str, thread_id: str, call_id: str) -> str:
    """The approval request id of one paused call: the same for every ask."""
    key = json.dumps([framework, thread_id, call_id], ensure_ascii=False).encode()
    return f"{framework}-{hashlib.sha256(key).hexdigest()[:32]}"


def parse_arguments(value: Any) -> tuple[dict[str, Any], str | None]:
    """A call's arguments as a JSON object, and the raw text when they are not one.

    The model's text is kept for the approvers when it does not parse to an
    object (the call then shows no arguments): the framework asks for approval
    of such calls too.
    """
    if value is None or value == "":
        return {}, None
    if isinstance(value, Mapping):
        return dict(value), None
    text = str(value)
    try:  # NaN and Infinity are not JSON: such text is kept raw too
        parsed = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return {}, text
    return (parsed, None) if isinstance(parsed, dict) else ({}, text)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def check_wait(wait: Any) -> float:
    """Return ``wait`` if it is a usable number of seconds to wait (0: do not wait).

    Raises:
        ValidationError: Otherwise.
    """
    if (
        isinstance(wait, bool)
        or not isinstance(wait, int | float)
        or not math.isfinite(wait)
        or wait < 0
    ):
        raise ValidationError(
            f"wait must be a non-negative number of seconds, got {describe(wait)}"
        )
    return float(wait)


def check_metadata(value: Any, where: str) -> dict[str, Any]:
    """A copy of the caller's metadata, checked: a JSON object without our keys.

    Raises:
        ValidationError: Otherwise.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a dict (a JSON object), got {describe(value)}")
    metadata = dict(value)
    clash = sorted(RESERVED_KEYS & set(metadata))
    if clash:
        raise ValidationError(f"{where} may not use the keys the bridge writes: {clash}")
    check_json(metadata, where)
    return metadata


def load_document(value: Any, kind: str) -> dict[str, Any]:
    """The fields of a serialized pending run of ``kind`` (JSON text or its dict).

    Raises:
        ValidationError: Not JSON, not an object, or not a pending run of this kind.
    """
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValidationError(f"a pending run must be JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ValidationError(f"a pending run must be a JSON object, got {describe(value)}")
    if value.get("kind") != kind or value.get("version") != 1:
        raise ValidationError(
            f"not a pending run of this bridge (kind {describe(value.get('kind'))}, "
            f"version {describe(value.get('version'))}; expected {kind!r} version 1)"
        )
    return dict(value)


def field_of(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    """``data[name]``, which must be of ``kind``.

    Raises:
        ValidationError: It is missing or of another type.
    """
    value = data.get(name)
    if not isinstance(value, kind):
        raise ValidationError(f"a pending run's {name!r} is {describe(value)}")
    return value


@dataclass(frozen=True)
class ToolCall:
    """A paused call as the frameworks give it (the bridges' input)."""

    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None
    tool_metadata: Any = None


@dataclass(frozen=True)
class PendingApproval:
    """A paused tool call and the approval request it waits for.

    Attributes:
        request_id: The approval request (decide it in the inbox, the API, the CLI).
        call_id: The framework's id of the call.
        tool_name: The tool the model called.
        arguments: What the model called it with (a JSON object).
    """

    request_id: str
    call_id: str
    tool_name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Its JSON form."""
        return {
            "request_id": self.request_id,
            "call_id": self.call_id,
            "tool_name": self.tool_name,
            "arguments": self.arguments,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PendingApproval:
        """Read what :meth:`to_dict` wrote.

        Raises:
            ValidationError: Not such a dict.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(f"a pending approval must be a dict, got {describe(data)}")
        return cls(
            request_id=field_of(data, "request_id", str),
            call_id=field_of(data, "call_id", str),
            tool_name=field_of(data, "tool_name", str),
            arguments=dict(field_of(data, "arguments", dict)),
        )


@dataclass(frozen=True)
class ToolDecision:
    """How the approvers decided one paused tool call.

    Attributes:
        request_id: The approval request.
        call_id: The framework's id of the call.
        tool_name: The tool.
        status: The request's status: APPROVED, REJECTED or TIMEOUT.
        approved: Whether the tool may run (an approval whose edited version
            changed more than the arguments is not honoured: False, with a message).
        arguments: What the tool runs with when approved: the approver's edited
            arguments, or the model's.
        edited: The approver changed the arguments.
        message: What the model is told instead of the tool's result when it may
            not run: the rejection's reason, or why it was not run.
        decided_by: Who decided (None for a timeout).
    """

    request_id: str
    call_id: str
    tool_name: str
    status: ApprovalStatus
    approved: bool
    arguments: dict[str, Any] | None = None
    edited: bool = False
    message: str | None = None
    decided_by: str | None = None


def check_call_id(value: Any) -> str:
    """Return ``value`` if it is a usable call id (non-empty text).

    Raises:
        ValidationError: Otherwise.
    """
    if not isinstance(value, str) or not value:
        raise ValidationError(f"a paused tool call has no call id (got {describe(value)})")
    return value
