"""What the agent-framework bridges share: one approval request per paused tool call.

Both bridges store a paused call the same way, so the approvers' inbox shows every
framework's calls alike. The request's metadata is the caller's metadata plus::

    {"framework": "openai-agents", "thread_id": "ticket-7", "tool_name": "refund",
     "call_id": "call_1", "arguments": {"order_id": 42, "amount": 500}}

(``raw_arguments`` too when the model's arguments were not a JSON object, and
``tool_metadata`` when the tool attached some). The request id is derived from the
framework, the caller's thread id and the call id, so asking twice for the same
pause finds the same request. A decision is read back as a :class:`ToolDecision`:
run the tool with these arguments, or tell the model this message instead.
"""

from kaizen.integrations._approvals.desk import ApprovalDesk, read_decision
from kaizen.integrations._approvals.values import (
    RESERVED_KEYS,
    PendingApproval,
    ToolCall,
    ToolDecision,
    check_call_id,
    check_metadata,
    check_wait,
    field_of,
    framework_errors,
    load_document,
    missing_framework,
    parse_arguments,
    request_id_for,
)

__all__ = [
    "ApprovalDesk",
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
    "read_decision",
    "request_id_for",
]
