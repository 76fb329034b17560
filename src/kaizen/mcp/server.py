"""The MCP server: approvals and cross-channel sessions as MCP tools and resources.

Every tool is a thin layer over :mod:`kaizen.service` (as the HTTP API and the CLI
are), acting for the caller (:func:`kaizen.mcp._identity.caller`) with the same
visibility rules: a user sees the requests they made or may vote on and their own
sessions; what they may not see does not exist for them. Errors are MCP tool errors
``"<code>: <message>"`` with the HTTP API's codes (``not_found``,
``invalid_request``...), never a traceback; a failed call writes nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from dataflow.errors import DataFlowError, NotFoundError
from kaizen import __version__, service
from kaizen.access import Viewer
from kaizen.api._json import jsonable as _jsonable
from kaizen.api.auth import TokenSource
from kaizen.mcp._identity import TokenVerifier, caller
from kaizen.mcp._waiting import MAX_WAIT_SECONDS, decision, wait_for_decision
from kaizen.outcomes import outcome_of, public_message

__all__ = ["CHANNEL", "TOOLS", "create_server"]

#: The channel MCP activity is recorded under in a session's ``channel_activity``.
CHANNEL = "mcp"
#: The tools every kaizen MCP server offers.
TOOLS = (
    "request_approval",
    "get_approval",
    "list_pending_approvals",
    "session_create",
    "session_get",
    "session_update",
)
_READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)

Id = Annotated[str, Field(min_length=1, max_length=255)]


def jsonable(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as JSON (datetimes as ISO 8601 text)."""
    converted: dict[str, Any] = _jsonable(value)
    return converted


@contextlib.contextmanager
def _tool_errors() -> Iterator[None]:
    """Our errors as MCP tool errors, with the API's code and public message."""
    try:
        yield
    except DataFlowError as exc:
        outcome = outcome_of(exc)
        code = outcome.code if outcome is not None else "internal_error"
        raise ToolError(f"{code}: {public_message(exc)}") from exc


@contextlib.contextmanager
def _resource_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except NotFoundError as exc:
        raise ResourceNotFoundError(f"{uri} not found") from exc
    except DataFlowError as exc:
        raise ResourceError(public_message(exc)) from exc


def create_server(
    kaizen: service.Kaizen,
    *,
    user: Viewer | None = None,
    tokens: TokenSource | None = None,
    issuer_url: str = "http://127.0.0.1",
) -> MCPServer:
    """The kaizen MCP server on ``kaizen``'s database.

    Args:
        kaizen: The services (one database).
        user: Whom every call acts for (a stdio server's ``--user``); None over
            HTTP, where each request's bearer token says.
        tokens: With ``user`` None: the :class:`~kaizen.api.auth.TokenSource` bearer
            tokens are checked against (``kaizen serve``'s token file).
        issuer_url: This server's public URL (the OAuth metadata names it).

    Raises:
        ValueError: Neither ``user`` nor ``tokens``, or both.
    """
    if (user is None) == (tokens is None):
        raise ValueError("give user (stdio) or tokens (HTTP), not both")
    auth: dict[str, Any] = {}
    if tokens is not None:
        from mcp.server.auth.settings import AuthSettings

        settings = AuthSettings.model_validate(
            {"issuer_url": issuer_url, "resource_server_url": None}
        )
        auth = {"token_verifier": TokenVerifier(tokens), "auth": settings}
    server: MCPServer = MCPServer(
        "kaizen",
        version=__version__,
        instructions=(
            "Ask a human before acting: request_approval (with wait_seconds to wait for "
            "the decision; use approved_metadata when the approver edited it). Carry a "
            "session across channels: session_create, session_get, session_update."
        ),
        **auth,
    )
    _approval_tools(server, kaizen, user)
    _session_tools(server, kaizen, user)
    _resources(server, kaizen, user)
    return server


def _approval_tools(server: MCPServer, k: service.Kaizen, user: Viewer | None) -> None:
    @server.tool(annotations=_WRITE)
    async def request_approval(
        external_agent_id: Id,
        metadata: dict[str, Any],
        ctx: Context,
        reason: Annotated[str | None, Field(max_length=4000)] = None,
        wait_seconds: Annotated[float | None, Field(ge=0, le=MAX_WAIT_SECONDS)] = None,
    ) -> dict[str, Any]:
        """Ask a human to approve an action of an external agent.

        The request is routed by the agent's stored policy (kaizen policies set) to
        its approvers, with you as the requester. Without wait_seconds it returns at
        once with status "pending"; with it, it waits up to that many seconds for the
        decision (reporting progress) and returns the status: "approved" (act with
        approved_metadata when present: the approver edited the arguments),
        "rejected" (rejection_reason says why), "timeout", or still "pending" (call
        get_approval later; a cancelled call leaves it pending too).
        """
        viewer = caller(user)
        with _tool_errors():
            created = await service.request_approval(
                k,
                external_agent_id,
                viewer.user,
                metadata=metadata,
                reason=reason,
            )
            if wait_seconds:
                created = await wait_for_decision(k, created["id"], wait_seconds, ctx, viewer)
        return jsonable(decision(created))

    @server.tool(annotations=_READ)
    async def get_approval(request_id: Id) -> dict[str, Any]:
        """One approval request you made or may vote on: its status, votes, progress
        toward the quorum, and approved_metadata if the approver edited it."""
        viewer = caller(user)
        with _tool_errors():
            return jsonable(await service.get_approval(k, request_id, viewer))

    @server.tool(annotations=_READ)
    async def list_pending_approvals(
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """The pending approval requests you made or may vote on, newest first."""
        viewer = caller(user)
        with _tool_errors():
            page = await service.list_approvals(k, viewer=viewer, status="pending", limit=limit)
        return jsonable({"items": page["items"], "more": page["next_offset"] is not None})


def _session_tools(server: MCPServer, k: service.Kaizen, user: Viewer | None) -> None:
    @server.tool(annotations=_WRITE)
    async def session_create(
        ttl_hours: Annotated[float | None, Field(gt=0, le=24 * 365)] = None,
    ) -> dict[str, Any]:
        """Create a cross-channel session of yours; continue it over the HTTP API or
        the kaizen CLI with its session_id."""
        viewer = caller(user)
        with _tool_errors():
            return jsonable(
                await service.create_session(k, viewer.user, ttl_hours=ttl_hours, channel=CHANNEL)
            )

    @server.tool(annotations=_READ)
    async def session_get(session_id: Id) -> dict[str, Any]:
        """One session of yours: its state and the channels that used it."""
        viewer = caller(user)
        with _tool_errors():
            return jsonable(await service.get_session(k, session_id, viewer))

    @server.tool(annotations=_WRITE)
    async def session_update(session_id: Id, state: dict[str, Any]) -> dict[str, Any]:
        """Merge keys into a session's state (other keys are kept; concurrent updates
        of other keys from any channel all survive) and refresh its expiry."""
        viewer = caller(user)
        with _tool_errors():
            return jsonable(
                await service.update_session_state(
                    k, session_id, state, channel=CHANNEL, viewer=viewer
                )
            )


def _resources(server: MCPServer, k: service.Kaizen, user: Viewer | None) -> None:
    @server.resource(
        "approval://{request_id}",
        name="approval",
        description="An approval request you made or may vote on (JSON).",
        mime_type="application/json",
    )
    async def approval(request_id: str) -> str:
        uri = f"approval://{request_id}"
        with _resource_errors(uri):
            found = await service.get_approval(k, request_id, caller(user))
        return json.dumps(jsonable(found))

    @server.resource(
        "session://{session_id}",
        name="session",
        description="A cross-channel session of yours (JSON).",
        mime_type="application/json",
    )
    async def session(session_id: str) -> str:
        uri = f"session://{session_id}"
        with _resource_errors(uri):
            found = await service.get_session(k, session_id, caller(user))
        return json.dumps(jsonable(found))
