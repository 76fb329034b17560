"""The API's endpoints: thin handlers over :mod:`kaizen.service`.

Each handler authenticates, validates its input, calls one service function
and renders the result; all rules live in the service and the managers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kaizen import service
from kaizen.access import Viewer
from kaizen.api._context import authenticate, kaizen_of, metrics_of
from kaizen.api._context import db_call as _db
from kaizen.api._errors import ApiError, error_response
from kaizen.api._json import jsonable
from kaizen.api._params import (
    MAX_LIMIT,
    MAX_REASON,
    STATUSES,
    body_object,
    body_str,
    body_time,
    json_object,
    query,
    query_int,
    query_str,
)
from kaizen.api.metrics import decided
from kaizen.api.session_routes import session_routes

__all__ = ["api_routes"]

logger = logging.getLogger("kaizen.api")

HEALTH_TIMEOUT = 5.0


def _approval_json(request: Request, approval: dict[str, Any]) -> dict[str, Any]:
    """An approval as JSON, with the URLs the notifier also sends (same base URL)."""
    base = (request.app.state.base_url or str(request.base_url)).rstrip("/")
    quoted = quote(str(approval["id"]), safe="")
    root = f"{base}/api/approvals/{quoted}"
    data: dict[str, Any] = jsonable(approval)
    data["links"] = {
        "self": root,
        "approve": f"{root}/approve",
        "reject": f"{root}/reject",
        "audit": f"{root}/audit",
        "page": f"{base}/approvals/{quoted}",
        "approve_page": f"{base}/approvals/{quoted}?action=approve",
        "reject_page": f"{base}/approvals/{quoted}?action=reject",
    }
    return data


async def me(request: Request) -> JSONResponse:
    """``GET /api/me``: who the token belongs to."""
    viewer = authenticate(request)
    query(request, ())
    return JSONResponse({"user": viewer.user, "role": "admin" if viewer.admin else "user"})


async def list_approvals(request: Request) -> JSONResponse:
    """``GET /api/approvals``: the approvals the caller may see, newest first, filtered
    and paged."""
    viewer = authenticate(request)
    names = (
        "status",
        "approver",
        "voter",
        "agent",
        "requested_by",
        "decided_by",
        "limit",
        "offset",
    )
    params = query(request, names)
    limit = query_int(params, "limit", default=100, low=1, high=MAX_LIMIT)
    offset = query_int(params, "offset", default=0, low=0, high=10**9)
    page = await _db(
        request,
        "list_approvals",
        service.list_approvals(
            kaizen_of(request),
            viewer=viewer,
            status=query_str(params, "status", choices=STATUSES),
            approver=query_str(params, "approver"),
            voter=query_str(params, "voter"),
            agent=query_str(params, "agent"),
            requested_by=query_str(params, "requested_by"),
            decided_by=query_str(params, "decided_by"),
            limit=limit,
            offset=offset,
        ),
    )
    body = {
        "items": [_approval_json(request, a) for a in page["items"]],
        "limit": limit,
        "offset": offset,
        "next_offset": page["next_offset"],
    }
    return JSONResponse(body)


async def get_approval(request: Request, request_id: str | None = None) -> JSONResponse:
    """``GET /api/approvals/{id}`` (404 also when the caller may not see it)."""
    viewer = authenticate(request)
    query(request, ())
    request_id = request_id or request.path_params["request_id"]
    approval = await _db(
        request, "get_approval", service.get_approval(kaizen_of(request), request_id, viewer)
    )
    return JSONResponse(_approval_json(request, approval))


async def approve(request: Request) -> JSONResponse:
    """``POST /api/approvals/{id}/approve`` with an optional ``{"comment", "metadata",
    "on_behalf_of"}``: the token's user votes to approve (the request stays pending
    until its quorum of approvals for one version of the metadata is met)."""
    viewer = authenticate(request)
    query(request, ())
    body = await json_object(request, allowed=("comment", "metadata", "on_behalf_of"))
    comment = body_str(body, "comment")
    metadata = body_object(body, "metadata")
    on_behalf_of = body_str(body, "on_behalf_of")
    request_id = request.path_params["request_id"]
    approval = await decided(
        metrics_of(request),
        "approve",
        service.approve(
            kaizen_of(request),
            request_id,
            viewer.user,
            comment=comment,
            metadata=metadata,
            on_behalf_of=on_behalf_of,
            viewer=viewer,
        ),
    )
    return JSONResponse(_approval_json(request, approval))


async def reject(request: Request) -> JSONResponse:
    """``POST /api/approvals/{id}/reject`` with ``{"reason", "on_behalf_of"?}``: the
    token's user rejects (a veto)."""
    viewer = authenticate(request)
    query(request, ())
    body = await json_object(request, allowed=("reason", "on_behalf_of"))
    reason = body.get("reason")
    if not isinstance(reason, str):  # what a reason may be, the manager checks (422 too)
        raise ApiError(422, f"reason must be a non-empty string of at most {MAX_REASON} characters")
    on_behalf_of = body_str(body, "on_behalf_of")
    request_id = request.path_params["request_id"]
    kaizen = kaizen_of(request)
    approval = await decided(
        metrics_of(request),
        "reject",
        service.reject(
            kaizen, request_id, viewer.user, reason, on_behalf_of=on_behalf_of, viewer=viewer
        ),
    )
    return JSONResponse(_approval_json(request, approval))


async def audit(request: Request) -> JSONResponse:
    """``GET /api/approvals/{id}/audit``: the request's audit events, oldest first
    (still there after the request was deleted)."""
    raw: bytes = request.scope.get("raw_path") or b""
    if raw and not raw.endswith(b"/audit"):
        # ``/api/approvals/x%2Faudit``: the request whose id ends in "/audit".
        return await get_approval(request, f"{request.path_params['request_id']}/audit")
    viewer = authenticate(request)
    query(request, ())
    request_id = request.path_params["request_id"]
    events = await _db(
        request, "approval_audit", service.approval_audit(kaizen_of(request), request_id, viewer)
    )
    return JSONResponse({"request_id": request_id, "events": jsonable(events)})


def _approver_for(viewer: Viewer, named: str | None) -> str:
    """Whose delegations a call is about: the token's user, or (an admin token) ``named``.

    Raises:
        ApiError: 403 (``admin_required``) when a user token names someone else.
    """
    if named is None or named == viewer.user:
        return viewer.user
    if not viewer.admin:
        raise ApiError(
            403,
            "only an admin token may manage another approver's delegations",
            code="admin_required",
        )
    return named


async def list_delegations(request: Request) -> JSONResponse:
    """``GET /api/delegations``: the active delegations from the token's user
    (``outgoing``) and to them (``incoming``); an admin may name ``?approver=``."""
    viewer = authenticate(request)
    params = query(request, ("approver",))
    user = _approver_for(viewer, query_str(params, "approver"))
    kaizen = kaizen_of(request)
    outgoing = await _db(
        request, "list_delegations", service.list_delegations(kaizen, approver=user)
    )
    incoming = await _db(
        request, "list_delegations", service.list_delegations(kaizen, delegate=user)
    )
    return JSONResponse(
        {"user": user, "outgoing": jsonable(outgoing), "incoming": jsonable(incoming)}
    )


async def create_delegation(request: Request) -> JSONResponse:
    """``POST /api/delegations`` with ``{"to", "until"?}``: let ``to`` vote for the
    token's user (an admin token may name the ``approver``); replaces an earlier one
    to the same delegate."""
    viewer = authenticate(request)
    query(request, ())
    body = await json_object(request, allowed=("to", "until", "approver"))
    to = body_str(body, "to")
    if to is None:
        raise ApiError(422, "to is required: the user id of the delegate")
    until = body_time(body, "until")
    approver = _approver_for(viewer, body_str(body, "approver"))
    delegation = await _db(
        request,
        "delegate",
        service.delegate(kaizen_of(request), approver, to, until=until, actor=viewer.user),
    )
    return JSONResponse(jsonable(delegation), status_code=201)


async def revoke_delegation(request: Request) -> Response:
    """``DELETE /api/delegations/{delegate}``: end that delegate's delegation from the
    token's user (an admin may name ``?approver=``); 404 when there is none."""
    viewer = authenticate(request)
    params = query(request, ("approver",))
    approver = _approver_for(viewer, query_str(params, "approver"))
    to = request.path_params["delegate_id"]
    await _db(
        request,
        "revoke_delegation",
        service.revoke_delegation(kaizen_of(request), approver, to, actor=viewer.user),
    )
    return Response(status_code=204)


async def healthz(request: Request) -> JSONResponse:
    """``GET /healthz``: 200 when the database answers a query, else 503."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            await _db(request, "health", service.health(kaizen_of(request)))
    except Exception as exc:
        logger.warning("health check failed: %s", type(exc).__name__)
        return error_response(503, "database unavailable", code="database_unavailable")
    return JSONResponse({"status": "ok", "database": "ok"})


def api_routes() -> list[Route]:
    """The API routes. Ids may contain ``/`` (sent percent-encoded), so the action
    routes come before the plain one that would otherwise swallow them."""
    ids = "/api/approvals/{request_id:path}"
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/me", me, methods=["GET"]),
        Route("/api/approvals", list_approvals, methods=["GET"]),
        Route(f"{ids}/approve", approve, methods=["POST"]),
        Route(f"{ids}/reject", reject, methods=["POST"]),
        Route(f"{ids}/audit", audit, methods=["GET"]),
        Route(ids, get_approval, methods=["GET"]),
        Route("/api/delegations", list_delegations, methods=["GET"]),
        Route("/api/delegations", create_delegation, methods=["POST"]),
        Route("/api/delegations/{delegate_id:path}", revoke_delegation, methods=["DELETE"]),
        *session_routes(),
    ]
