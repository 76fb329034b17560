"""The OpenAPI 3.1 document of the approvals API, written by hand to match :mod:`routes`."""

from __future__ import annotations

from typing import Any

from kaizen import __version__
from kaizen.api._params import MAX_LIMIT, MAX_REASON, STATUSES

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        401: "Missing or invalid bearer token.",
        403: "The authenticated user is not an approver of this request (code "
        "``not_an_approver``), or made it (``own_request``: nobody decides their own request).",
        404: "Unknown id, or one the authenticated user may not see.",
        409: "The request was already decided (or timed out).",
        422: "Invalid or unknown query parameters, or an invalid body.",
        503: "The database is unreachable.",
    }
    return {str(s): _json(_ref("Error"), text[s]) for s in statuses}


def _param(
    name: str, schema: dict[str, Any], description: str, where: str = "query"
) -> dict[str, Any]:
    param: dict[str, Any] = {
        "name": name,
        "in": where,
        "schema": schema,
        "description": description,
    }
    if where == "path":
        param["required"] = True
    return param


_ID = _param("request_id", {"type": "string"}, "Approval request id (percent-encoded).", "path")
_PAGE = [
    _param(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        "Page size.",
    ),
    _param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip."),
]
_NEXT = {
    "type": ["integer", "null"],
    "description": "Offset of the next page; null on the last page.",
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_SCHEMAS: dict[str, Any] = {
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
        "required": ["id", "external_agent_id", "requested_by", "approvers", "status", "links"],
        "properties": {
            "id": {"type": "string"},
            "external_agent_id": {"type": "string"},
            "requested_by": {"type": "string"},
            "approvers": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string", "enum": [s for s in STATUSES if s != "all"]},
            "approval_reason": {"type": ["string", "null"]},
            "request_metadata": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "deadline_at": _NULLABLE_TIME,
            "approved_at": _NULLABLE_TIME,
            "approved_by": {"type": ["string", "null"]},
            "rejection_reason": {"type": ["string", "null"]},
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
    "ApprovalList": {
        "type": "object",
        "required": ["items", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": _ref("Approval")},
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
    "SessionList": {
        "type": "object",
        "required": ["items", "limit", "offset"],
        "properties": {
            "items": {"type": "array", "items": {"type": "object"}},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": _NEXT,
        },
    },
    "RejectBody": {
        "type": "object",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON}},
    },
}


def _op(
    summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *errors: int
) -> dict[str, Any]:
    """One operation; every API call may also fail with 401, 422 (query) and 503."""
    codes = sorted({401, 422, 503, *errors})
    return {"summary": summary, "parameters": params, "responses": {"200": ok, **_errors(*codes)}}


def _decision(summary: str, body: dict[str, Any] | None) -> dict[str, Any]:
    op = _op(summary, [_ID], _json(_ref("Approval"), "The decided request."), 403, 404, 409)
    op["description"] = "The approver is the authenticated user; the body never names one."
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _approval_paths() -> dict[str, Any]:
    status = _param(
        "status", {"type": "string", "enum": list(STATUSES)}, "Only this status (default: all)."
    )
    approver = _param("approver", {"type": "string"}, "Only requests this user may decide.")
    agent = _param("agent", {"type": "string"}, "Only requests for this external agent.")
    requested_by = _param("requested_by", {"type": "string"}, "Only requests this user made.")
    decided_by = _param(
        "decided_by", {"type": "string"}, "Only requests this user approved or rejected."
    )
    root = "/api/approvals/{request_id}"
    return {
        "/api/approvals": {
            "get": _op(
                "List the approval requests the caller may see (made by them or routed to "
                "them; an admin: all), newest first; filters combine",
                [status, approver, agent, requested_by, decided_by, *_PAGE],
                _json(_ref("ApprovalList"), "A page of requests."),
            )
        },
        root: {"get": _op("One approval request", [_ID], _json(_ref("Approval"), "It."), 404)},
        f"{root}/approve": {"post": _decision("Approve a pending request", None)},
        f"{root}/reject": {"post": _decision("Reject a pending request", _ref("RejectBody"))},
        f"{root}/audit": {
            "get": _op(
                "The request's audit trail, oldest first (kept after deletion)",
                [_ID],
                _json(_ref("AuditTrail"), "The events."),
                404,
            )
        },
    }


def _other_paths() -> dict[str, Any]:
    user = _param("user", {"type": "string"}, "Only this user's sessions.")
    expired = _param(
        "include_expired", {"type": "boolean", "default": False}, "Include expired sessions."
    )
    sid = _param("session_id", {"type": "string"}, "Session id.", "path")
    me = {
        "type": "object",
        "properties": {"user": {"type": "string"}, "role": {"enum": ["user", "admin"]}},
    }
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness and database check",
                "security": [],
                "responses": {"200": {"description": "Database reachable."}, **_errors(503)},
            }
        },
        "/api/me": {"get": _op("The authenticated user", [], _json(me, "Whose token it is."))},
        "/api/sessions": {
            "get": _op(
                "List the caller's sessions (an admin: anyone's), read-only",
                [user, expired, *_PAGE],
                _json(_ref("SessionList"), "A page of sessions."),
            )
        },
        "/api/sessions/{session_id}": {
            "get": _op("One session (read-only)", [sid], _json({"type": "object"}, "It."), 404)
        },
    }


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``servers`` names ``base_url`` when one is configured."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Kaizen approvals API",
            "version": __version__,
            "description": "Decide external-agent approval requests; read sessions.",
        },
        "paths": {**_other_paths(), **_approval_paths()},
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if base_url:
        doc["servers"] = [{"url": base_url.rstrip("/")}]
    return doc
