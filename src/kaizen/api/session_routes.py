"""The session endpoints: list, read, create, and merge into a session's state (the
``api`` channel of a cross-channel session)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from kaizen import service
from kaizen.access import Viewer
from kaizen.api._context import authenticate, db_call, kaizen_of
from kaizen.api._errors import ApiError
from kaizen.api._json import jsonable
from kaizen.api._params import (
    MAX_LIMIT,
    body_object,
    body_str,
    json_object,
    query,
    query_bool,
    query_int,
    query_str,
)

__all__ = ["SESSION_CHANNEL", "session_routes"]

#: The channel the API records in a session's ``channel_activity``.
SESSION_CHANNEL = "api"


async def list_sessions(request: Request) -> JSONResponse:
    """``GET /api/sessions``: the caller's sessions (an admin's: everyone's, optionally
    of one user), read-only."""
    viewer = authenticate(request)
    params = query(request, ("user", "include_expired", "limit", "offset"))
    limit = query_int(params, "limit", default=100, low=1, high=MAX_LIMIT)
    offset = query_int(params, "offset", default=0, low=0, high=10**9)
    items = await db_call(
        request,
        "list_sessions",
        service.list_sessions(
            kaizen_of(request),
            viewer=viewer,
            user=query_str(params, "user"),
            include_expired=query_bool(params, "include_expired"),
            limit=limit + 1,  # one more tells whether a next page exists
            offset=offset,
        ),
    )
    more = len(items) > limit
    body = {
        "items": jsonable(items[:limit]),
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }
    return JSONResponse(body)


async def get_session(request: Request) -> JSONResponse:
    """``GET /api/sessions/{id}`` (read-only; 404 also when it is not the caller's)."""
    viewer = authenticate(request)
    query(request, ())
    session_id = request.path_params["session_id"]
    session = await db_call(
        request, "get_session", service.get_session(kaizen_of(request), session_id, viewer)
    )
    return JSONResponse(jsonable(session))


def _session_user(viewer: Viewer, named: str | None) -> str:
    """Whose session a call creates: the token's user, or (an admin token) ``named``.

    Raises:
        ApiError: 403 (``admin_required``) when a user token names someone else.
    """
    if named is None or named == viewer.user:
        return viewer.user
    if not viewer.admin:
        raise ApiError(
            403, "only an admin token may create another user's session", code="admin_required"
        )
    return named


async def create_session(request: Request) -> JSONResponse:
    """``POST /api/sessions`` with ``{"ttl_hours"?, "state"?}``: a new session of the
    token's user (an admin token may name its ``user_id``), created by the ``api``
    channel; 201 with the session."""
    viewer = authenticate(request)
    query(request, ())
    body = await json_object(request, allowed=("ttl_hours", "state", "user_id"))
    state = body_object(body, "state")
    user = _session_user(viewer, body_str(body, "user_id"))
    ttl_hours = body.get("ttl_hours")  # what a TTL may be, the manager checks (422 too)
    session = await db_call(
        request,
        "create_session",
        service.create_session(
            kaizen_of(request), user, ttl_hours=ttl_hours, channel=SESSION_CHANNEL, state=state
        ),
    )
    return JSONResponse(jsonable(session), status_code=201)


async def update_session_state(request: Request) -> JSONResponse:
    """``PATCH /api/sessions/{id}/state`` with a JSON object: its keys are merged into
    the session's state atomically (other keys are kept), as the ``api`` channel; 200
    with the session as stored after the merge, 404 when it is missing, expired or
    not the caller's (nothing is written then)."""
    raw: bytes = request.scope.get("raw_path") or b""
    if raw and not raw.endswith(b"/state"):
        # ``/api/sessions/x%2Fstate``: the session whose id ends in "/state", not its state.
        raise ApiError(405, "a session's state is changed at /api/sessions/{id}/state")
    viewer = authenticate(request)
    query(request, ())
    updates = await json_object(request, allowed=None, empty=False)  # any keys
    session = await db_call(
        request,
        "update_session_state",
        service.update_session_state(
            kaizen_of(request),
            request.path_params["session_id"],
            updates,
            channel=SESSION_CHANNEL,
            viewer=viewer,
        ),
    )
    return JSONResponse(jsonable(session))


def session_routes() -> list[Route]:
    """The session routes; ``.../state`` before the plain id route (ids may hold ``/``)."""
    return [
        Route("/api/sessions", list_sessions, methods=["GET"]),
        Route("/api/sessions", create_session, methods=["POST"]),
        Route("/api/sessions/{session_id:path}/state", update_session_state, methods=["PATCH"]),
        Route("/api/sessions/{session_id:path}", get_session, methods=["GET"]),
    ]
