"""The OpenAPI 3.1 document of the approvals API, written by hand to match :mod:`routes`."""

from __future__ import annotations

from typing import Any

from kaizen import __version__
from kaizen.api._openapi_schemas import SCHEMAS, ref
from kaizen.api._params import MAX_LIMIT, STATUSES

__all__ = ["openapi_document"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_TEXT = {
    401: "Missing or invalid bearer token.",
    403: "The authenticated user is not an approver of this request (code "
    "``not_an_approver``), or made it (``own_request``: nobody decides their own request).",
    404: "Unknown id, or one the authenticated user may not see.",
    409: "The request was already decided or timed out (``already_decided``), or the "
    "authenticated user's vote on it is already recorded (``already_voted``).",
    422: "Invalid or unknown query parameters, or an invalid body.",
    503: "The database is unreachable or timed out (``unavailable``, ``database_timeout``), "
    "or refuses the server's database name or credentials (``database_refused``).",
}


def _errors(*statuses: int, **texts: str) -> dict[str, Any]:
    """Error responses; ``texts`` (``e404="..."``) replace the usual descriptions."""
    return {str(s): _json(ref("Error"), texts.get(f"e{s}", _ERROR_TEXT[s])) for s in statuses}


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


def _op(
    summary: str, params: list[dict[str, Any]], ok: dict[str, Any], *errors: int, **texts: str
) -> dict[str, Any]:
    """One operation; every API call may also fail with 401, 422 (query) and 503."""
    codes = sorted({401, 422, 503, *errors})
    responses = {"200": ok, **_errors(*codes, **texts)}
    return {"summary": summary, "parameters": params, "responses": responses}


def _decision(summary: str, body: dict[str, Any], required: bool) -> dict[str, Any]:
    ok = _json(
        ref("Approval"), "The request after the vote (``pending`` while short of its quorum)."
    )
    op = _op(summary, [_ID], ok, 403, 404, 409)
    op["description"] = (
        "The voter is the authenticated user (or a delegate of an approver, voting for "
        "them); the body never names one."
    )
    op["requestBody"] = {
        "required": required,
        "content": {"application/json": {"schema": body}},
    }
    return op


def _approval_paths() -> dict[str, Any]:
    status = _param(
        "status", {"type": "string", "enum": list(STATUSES)}, "Only this status (default: all)."
    )
    approver = _param("approver", {"type": "string"}, "Only requests routed to this user.")
    voter = _param(
        "voter",
        {"type": "string"},
        "Only requests this user may vote on: routed to them or to someone they stand in "
        "for as a delegate (not with approver).",
    )
    agent = _param("agent", {"type": "string"}, "Only requests for this external agent.")
    requested_by = _param("requested_by", {"type": "string"}, "Only requests this user made.")
    decided_by = _param(
        "decided_by", {"type": "string"}, "Only requests this user approved or rejected."
    )
    root = "/api/approvals/{request_id}"
    return {
        "/api/approvals": {
            "get": _op(
                "List the approval requests the caller may see (made by them, routed to "
                "them or to someone they stand in for as a delegate; an admin: all), newest "
                "first; filters combine",
                [status, approver, voter, agent, requested_by, decided_by, *_PAGE],
                _json(ref("ApprovalList"), "A page of requests."),
            )
        },
        root: {"get": _op("One approval request", [_ID], _json(ref("Approval"), "It."), 404)},
        f"{root}/approve": {
            "post": _decision(
                "Vote to approve a pending request (optionally an edited version of its "
                "metadata, with a comment); an empty body approves it as requested",
                ref("ApproveBody"),
                False,
            )
        },
        f"{root}/reject": {
            "post": _decision(
                "Reject a pending request (a veto: one rejection decides)",
                ref("RejectBody"),
                True,
            )
        },
        f"{root}/audit": {
            "get": _op(
                "The request's audit trail, oldest first (kept after deletion)",
                [_ID],
                _json(ref("AuditTrail"), "The events."),
                404,
            )
        },
    }


def _session_paths() -> dict[str, Any]:
    user = _param("user", {"type": "string"}, "Only this user's sessions.")
    expired = _param(
        "include_expired", {"type": "boolean", "default": False}, "Include expired sessions."
    )
    sid = _param("session_id", {"type": "string"}, "Session id (percent-encoded).", "path")
    one = _json(ref("Session"), "The session.")
    create = _op(
        "Create a session of the authenticated user (an admin token: of ``user_id``), "
        "recorded as the ``api`` channel's activity",
        [],
        _json(ref("Session"), "The new session."),
        403,
        e403="A user token named another user (``admin_required``).",
    )
    create["responses"] = {"201": create["responses"].pop("200"), **create["responses"]}
    create["requestBody"] = {
        "required": False,
        "content": {"application/json": {"schema": ref("SessionCreateBody")}},
    }
    merge = _op(
        "Merge keys into a live session's state atomically (other keys are kept; "
        "concurrent merges of other keys from any channel all survive), as the ``api`` "
        "channel; refreshes its expiry",
        [sid],
        _json(ref("Session"), "The session as stored after the merge."),
        404,
        e404="Unknown or expired id, or a session of another user (nothing is written).",
        e422="Invalid query parameters, or a body that is not a JSON object of "
        "JSON values every database stores.",
    )
    merge["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": ref("SessionStateBody")}},
    }
    return {
        "/api/sessions": {
            "get": _op(
                "List the caller's sessions (an admin: anyone's)",
                [user, expired, *_PAGE],
                _json(ref("SessionList"), "A page of sessions."),
            ),
            "post": create,
        },
        "/api/sessions/{session_id}": {"get": _op("One session", [sid], one, 404)},
        "/api/sessions/{session_id}/state": {"patch": merge},
    }


def _other_paths() -> dict[str, Any]:
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
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format); an admin token unless the "
                "server runs with --metrics-public",
                "responses": {
                    "200": {
                        "description": "Requests by route and status, decisions by outcome, "
                        "pending requests, database call latency, process metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401),
                    "403": _json(ref("Error"), "Not an admin token (``admin_required``)."),
                },
            }
        },
        "/api/me": {"get": _op("The authenticated user", [], _json(me, "Whose token it is."))},
    }


def _delegation_paths() -> dict[str, Any]:
    approver = _param(
        "approver",
        {"type": "string"},
        "Another approver's delegations (admin tokens only; default: the authenticated user).",
    )
    delegate = _param("delegate_id", {"type": "string"}, "The delegate (percent-encoded).", "path")
    admin_only = "A user token named another approver (``admin_required``)."
    created = _json(ref("Delegation"), "The delegation (replacing one to the same delegate).")
    post = _op(
        "Let another user vote for the authenticated user (or, with an admin token, for "
        "``approver``) until a time or until revoked",
        [],
        created,
        403,
        e403=admin_only,
    )
    post["responses"] = {"201": post["responses"].pop("200"), **post["responses"]}
    post["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": ref("DelegateBody")}},
    }
    delete = _op(
        "Revoke a delegation of the authenticated user (an admin: of ``approver``); votes "
        "already cast through it stay",
        [delegate, approver],
        {"description": "Revoked."},
        403,
        404,
        e403=admin_only,
        e404="That user holds no active delegation from the approver.",
    )
    delete["responses"] = {"204": delete["responses"].pop("200"), **delete["responses"]}
    return {
        "/api/delegations": {
            "get": _op(
                "The active delegations from and to the authenticated user (an admin: "
                "``approver``)",
                [approver],
                _json(ref("Delegations"), "Both lists."),
                403,
                e403=admin_only,
            ),
            "post": post,
        },
        "/api/delegations/{delegate_id}": {"delete": delete},
    }


def openapi_document(base_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``servers`` names ``base_url`` when one is configured."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Kaizen approvals API",
            "version": __version__,
            "description": "Vote on external-agent approval requests (quorum with veto, "
            "edit-and-approve, delegation); create, update and read cross-channel sessions.",
        },
        "paths": {
            **_other_paths(),
            **_approval_paths(),
            **_delegation_paths(),
            **_session_paths(),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if base_url:
        doc["servers"] = [{"url": base_url.rstrip("/")}]
    return doc
