"""The component schemas of the OpenAPI document (:mod:`kaizen.api.openapi`)."""

from __future__ import annotations

from typing import Any

from kaizen.api._params import MAX_REASON, STATUSES
from kaizen.integrations.nexus._checks import MAX_TTL_HOURS

__all__ = ["SCHEMAS", "ref"]


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


_NEXT = {
    "type": ["integer", "null"],
    "description": "Offset of the next page; null on the last page.",
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_ON_BEHALF_OF = {
    "type": ["string", "null"],
    "description": "For a delegate of several approvers: whom the vote is for "
    "(default: themselves if an approver, else the first delegator whose vote is not in).",
}

_TIME = {"type": "string", "format": "date-time"}
_SESSION: dict[str, Any] = {
    "session_id": {"type": "string"},
    "user_id": {"type": "string"},
    "created_at": _TIME,
    "last_accessed": _TIME,
    "expires_at": _TIME,
    "ttl_seconds": {"type": "integer"},
    "expired": {"type": "boolean"},
    "memory_pool_id": {"type": ["string", "null"]},
    "state": {"type": "object", "description": "Shared by every channel."},
    "channel_activity": {
        "type": "object",
        "additionalProperties": _TIME,
        "description": "Channel (api, cli, mcp...) -> when it last used the session.",
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "Approval": {
        "type": "object",
        "required": [
            "id",
            "external_agent_id",
            "requested_by",
            "approvers",
            "status",
            "quorum",
            "votes",
            "progress",
            "eligible",
            "links",
        ],
        "properties": {
            "id": {"type": "string"},
            "external_agent_id": {"type": "string"},
            "requested_by": {"type": "string"},
            "approvers": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Who may vote, escalation approvers included once added.",
            },
            "status": {"type": "string", "enum": [s for s in STATUSES if s != "all"]},
            "approval_reason": {"type": ["string", "null"]},
            "request_metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "deadline_at": _NULLABLE_TIME,
            "approved_at": _NULLABLE_TIME,
            "approved_by": {
                "type": ["string", "null"],
                "description": "Who cast the deciding vote (approval or rejection).",
            },
            "rejection_reason": {"type": ["string", "null"]},
            "quorum": {
                "type": "integer",
                "minimum": 1,
                "description": "Approvals of one version of the metadata that approve it; "
                "any eligible rejection rejects it (a veto).",
            },
            "escalate_to": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Who the request goes to when its deadline passes undecided.",
            },
            "escalations": {
                "type": "integer",
                "minimum": 0,
                "description": "Escalations done (more than 0: it was escalated).",
            },
            "timeout_seconds": {"type": ["number", "null"]},
            "excluded_approvers": {"type": "array", "items": {"type": "string"}},
            "approved_metadata": {
                "type": ["object", "null"],
                "description": "The edited metadata the request was approved with "
                "(null: approved as requested, or not approved).",
            },
            "votes": {"type": "array", "items": ref("Vote"), "description": "Oldest first."},
            "progress": ref("Progress"),
            "eligible": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Approvers who may still vote in person (their vote is not in).",
            },
            "links": {
                "type": "object",
                "properties": {
                    k: {"type": "string", "format": "uri"}
                    for k in (
                        "self",
                        "approve",
                        "reject",
                        "audit",
                        "page",
                        "approve_page",
                        "reject_page",
                    )
                },
            },
        },
    },
    "Vote": {
        "type": "object",
        "required": ["approver_id", "decision", "at"],
        "properties": {
            "approver_id": {
                "type": "string",
                "description": "Who voted (the delegate, for a vote on someone's behalf).",
            },
            "decision": {"type": "string", "enum": ["approve", "reject"]},
            "at": {"type": "string", "format": "date-time"},
            "comment": {
                "type": ["string", "null"],
                "description": "The voter's comment (a rejection's reason).",
            },
            "on_behalf_of": {
                "type": ["string", "null"],
                "description": "The approver a delegate voted for.",
            },
            "metadata": {
                "type": ["object", "null"],
                "description": "The edited version an approval is for (null: as requested).",
            },
        },
    },
    "Progress": {
        "type": "object",
        "required": ["approvals", "quorum", "text"],
        "properties": {
            "approvals": {
                "type": "integer",
                "description": "Approvals of the version with the most approvals.",
            },
            "quorum": {"type": "integer"},
            "text": {"type": "string", "examples": ["1 of 2"]},
            "metadata": {
                "type": ["object", "null"],
                "description": "That version (null: the request's own metadata).",
            },
        },
    },
    "ApprovalList": {
        "type": "object",
        "required": ["items", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref("Approval")},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": _NEXT,
        },
    },
    "AuditTrail": {
        "type": "object",
        "required": ["request_id", "events"],
        "properties": {
            "request_id": {"type": "string"},
            "events": {"type": "array", "items": {"type": "object"}},
        },
    },
    "Session": {
        "type": "object",
        "required": list(_SESSION),
        "properties": _SESSION,
    },
    "SessionCreateBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "ttl_hours": {
                "type": ["number", "null"],
                "exclusiveMinimum": 0,
                "maximum": MAX_TTL_HOURS,
                "description": "Lifetime after each use, in hours (default: 1).",
            },
            "state": {"type": ["object", "null"], "description": "The initial state."},
            "user_id": {
                "type": ["string", "null"],
                "description": "Whose session it is (admin tokens only; default: the "
                "authenticated user).",
            },
        },
    },
    "SessionStateBody": {
        "type": "object",
        "additionalProperties": True,
        "description": "The top-level keys to set in the state (a shallow merge: a key "
        "given replaces its value, a null value is stored, other keys are kept).",
    },
    "SessionList": {
        "type": "object",
        "required": ["items", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": ref("Session")},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": _NEXT,
        },
    },
    "ApproveBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "comment": {"type": ["string", "null"], "maxLength": MAX_REASON},
            "metadata": {
                "type": ["object", "null"],
                "description": "Approve an edited version of the request's metadata "
                "(edit-and-approve): approvals count toward the quorum per version.",
            },
            "on_behalf_of": _ON_BEHALF_OF,
        },
    },
    "RejectBody": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON},
            "on_behalf_of": _ON_BEHALF_OF,
        },
    },
    "Delegation": {
        "type": "object",
        "required": ["approver_id", "delegate_id", "until", "created_at", "created_by"],
        "properties": {
            "approver_id": {"type": "string", "description": "Who delegates."},
            "delegate_id": {"type": "string", "description": "Who may vote for them."},
            "until": {**_NULLABLE_TIME, "description": "When it ends (null: when revoked)."},
            "created_at": {"type": "string", "format": "date-time"},
            "created_by": {"type": "string"},
        },
    },
    "Delegations": {
        "type": "object",
        "required": ["user", "outgoing", "incoming"],
        "properties": {
            "user": {"type": "string"},
            "outgoing": {
                "type": "array",
                "items": ref("Delegation"),
                "description": "Delegations from the user: who may vote for them.",
            },
            "incoming": {
                "type": "array",
                "items": ref("Delegation"),
                "description": "Delegations to the user: whom they may vote for.",
            },
        },
    },
    "DelegateBody": {
        "type": "object",
        "required": ["to"],
        "additionalProperties": False,
        "properties": {
            "to": {"type": "string", "description": "The delegate's user id."},
            "until": {
                **_NULLABLE_TIME,
                "description": "When it ends: a future ISO 8601 date-time with a UTC "
                "offset (null or absent: until revoked).",
            },
            "approver": {
                "type": "string",
                "description": "Whose approvals to delegate (admin tokens only; default: "
                "the authenticated user).",
            },
        },
    },
}
