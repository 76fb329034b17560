"""The MCP tools and resources, in-process, on every database: what they answer, what
they write, what a caller may see, and that bad input is a tool error with nothing
written."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_support import AGENT, LEAD, Connect, error_text, structured

from kaizen import service
from kaizen.access import Viewer
from kaizen.mcp import TOOLS, create_server
from refusals import closed_port


async def _count(kaizen: service.Kaizen) -> int:
    return len((await service.list_approvals(kaizen, status="all"))["items"])


async def test_lists_the_tools_and_resource_templates(connect: Connect) -> None:
    async with connect("agent-1") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        templates = await client.list_resource_templates()
    assert set(tools) == set(TOOLS)
    schema = tools["request_approval"].input_schema
    assert set(schema["required"]) == {"external_agent_id", "metadata"}
    assert {"reason", "wait_seconds"} <= set(schema["properties"])
    assert tools["get_approval"].annotations is not None
    assert tools["get_approval"].annotations.read_only_hint is True
    uris = {t.uri_template for t in templates.resource_templates}
    assert uris == {"approval://{request_id}", "session://{session_id}"}


async def test_request_is_routed_by_the_stored_policy_with_the_caller_as_requester(
    connect: Connect, kaizen: service.Kaizen
) -> None:
    async with connect("agent-1") as client:
        answer = structured(
            await client.call_tool(
                "request_approval",
                {"external_agent_id": AGENT, "metadata": {"env": "prod"}, "reason": "ship v2"},
            )
        )
    assert answer["status"] == "pending" and answer["approvers"] == [LEAD]
    stored = await service.get_approval(kaizen, answer["request_id"])
    assert (stored["requested_by"], stored["approval_reason"]) == ("agent-1", "ship v2")
    assert stored["request_metadata"] == {"env": "prod"}


async def test_waits_for_an_edited_approval_reporting_progress(
    connect: Connect, kaizen: service.Kaizen
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []
    approved = asyncio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))
        if not approved.is_set():  # the request exists: the approver edits and approves
            approved.set()
            request_id = (message or "").split()[2]
            await service.approve(kaizen, request_id, LEAD, metadata={"env": "staging"})

    async with connect("agent-1") as client:
        answer = structured(
            await client.call_tool(
                "request_approval",
                {"external_agent_id": AGENT, "metadata": {"env": "prod"}, "wait_seconds": 60},
                progress_callback=on_progress,
            )
        )
    assert answer["status"] == "approved" and answer["decided_by"] == LEAD
    assert answer["approved_metadata"] == {"env": "staging"}
    assert progress and progress[0][1] == 60
    assert f"approval request {answer['request_id']} pending: 0 of 1" in str(progress[0][2])


async def test_a_rejection_and_a_wait_that_runs_out(
    connect: Connect, kaizen: service.Kaizen
) -> None:
    async with connect("agent-1") as client:
        first = structured(
            await client.call_tool("request_approval", {"external_agent_id": AGENT, "metadata": {}})
        )
        await service.reject(kaizen, first["request_id"], LEAD, "not on a Friday")
        waited = structured(
            await client.call_tool("get_approval", {"request_id": first["request_id"]})
        )
        assert waited["status"] == "rejected"
        assert waited["rejection_reason"] == "not on a Friday"
        second = structured(
            await client.call_tool(
                "request_approval",
                {"external_agent_id": AGENT, "metadata": {"n": 2}, "wait_seconds": 0.2},
            )
        )
    assert second["status"] == "pending"  # nobody decided in time: it stays pending
    assert await _count(kaizen) == 2
    assert first["status"] == "pending"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"metadata": {}}, "external_agent_id"),
        ({"external_agent_id": AGENT}, "metadata"),
        ({"external_agent_id": AGENT, "metadata": "prod"}, "metadata"),
        ({"external_agent_id": AGENT, "metadata": [1]}, "metadata"),
        ({"external_agent_id": "", "metadata": {}}, "external_agent_id"),
        ({"external_agent_id": " x", "metadata": {}}, "whitespace"),
        ({"external_agent_id": "x" * 256, "metadata": {}}, "external_agent_id"),
        ({"external_agent_id": "unknown", "metadata": {}}, "invalid_request: agent 'unknown'"),
        ({"external_agent_id": AGENT, "metadata": {}, "wait_seconds": -1}, "wait_seconds"),
        ({"external_agent_id": AGENT, "metadata": {}, "wait_seconds": 1e9}, "wait_seconds"),
        ({"external_agent_id": AGENT, "metadata": {}, "wait_seconds": "soon"}, "wait_seconds"),
        ({"external_agent_id": AGENT, "metadata": {}, "reason": "r" * 4001}, "reason"),
        ({"external_agent_id": AGENT, "metadata": {"k": "\x00"}}, "invalid_request"),
        ({"external_agent_id": AGENT, "metadata": {}, "extra": 1}, None),
    ],
)
async def test_bad_requests_are_tool_errors_and_write_nothing(
    connect: Connect, kaizen: service.Kaizen, arguments: dict[str, Any], message: str | None
) -> None:
    async with connect("agent-1") as client:
        result = await client.call_tool("request_approval", arguments)
    if message is None:  # an unknown argument is ignored, as MCP clients expect
        assert structured(result)["status"] == "pending"
        return
    assert message in error_text(result)
    assert "Traceback" not in error_text(result)
    assert await _count(kaizen) == 0


async def test_a_caller_cannot_choose_the_request_id(connect: Connect) -> None:
    async with connect("agent-1") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        result = await client.call_tool(
            "request_approval", {"external_agent_id": AGENT, "metadata": {}, "request_id": "x"}
        )
    # No id of the caller's choosing: nobody can probe for another user's request ids.
    assert "request_id" not in tools["request_approval"].input_schema["properties"]
    assert structured(result)["request_id"] != "x"


async def test_each_caller_sees_only_what_is_theirs(connect: Connect) -> None:
    async with connect("agent-1") as client:
        made = structured(
            await client.call_tool("request_approval", {"external_agent_id": AGENT, "metadata": {}})
        )
        mine = structured(await client.call_tool("list_pending_approvals", {}))
        assert [a["id"] for a in mine["items"]] == [made["request_id"]]
    request_id = made["request_id"]
    async with connect(LEAD) as client:  # the approver sees it too
        got = structured(await client.call_tool("get_approval", {"request_id": request_id}))
        assert got["eligible"] == [LEAD]
        resource = await client.read_resource(f"approval://{request_id}")
        assert json.loads(resource.contents[0].text)["id"] == request_id
    async with connect("stranger") as client:
        listed = structured(await client.call_tool("list_pending_approvals", {"limit": 10}))
        assert listed == {"items": [], "more": False}
        result = await client.call_tool("get_approval", {"request_id": request_id})
        assert error_text(result).endswith(f"not_found: approval request {request_id!r} not found")
        with pytest.raises(MCPError, match="not found"):
            await client.read_resource(f"approval://{request_id}")


async def test_sessions_over_mcp(connect: Connect, kaizen: service.Kaizen) -> None:
    async with connect("agent-1") as client:
        created = structured(await client.call_tool("session_create", {"ttl_hours": 2}))
        session_id = created["session_id"]
        assert created["user_id"] == "agent-1" and created["ttl_seconds"] == 7200
        structured(
            await client.call_tool(
                "session_update", {"session_id": session_id, "state": {"step": 1, "plan": "a"}}
            )
        )
        updated = structured(
            await client.call_tool(
                "session_update", {"session_id": session_id, "state": {"step": 2}}
            )
        )
        assert updated["state"] == {"step": 2, "plan": "a"}
        got = structured(await client.call_tool("session_get", {"session_id": session_id}))
        assert "mcp" in got["channel_activity"] and got["state"] == updated["state"]
        resource = await client.read_resource(f"session://{session_id}")
        assert json.loads(resource.contents[0].text)["state"] == {"step": 2, "plan": "a"}
        bad = await client.call_tool("session_update", {"session_id": session_id, "state": [1]})
        assert "state" in error_text(bad)
        bad = await client.call_tool("session_create", {"ttl_hours": 0})
        assert "ttl_hours" in error_text(bad)
        missing = await client.call_tool("session_get", {"session_id": "nope"})
        assert error_text(missing).count("not_found:") == 1
    async with connect("stranger") as client:
        result = await client.call_tool(
            "session_update", {"session_id": session_id, "state": {"step": 99}}
        )
        assert error_text(result).count("not_found:") == 1
        result = await client.call_tool("session_get", {"session_id": session_id})
        assert error_text(result).count("not_found:") == 1
        with pytest.raises(MCPError, match="not found"):
            await client.read_resource(f"session://{session_id}")
    stored = await service.get_session(kaizen, session_id)
    assert stored["state"] == {"step": 2, "plan": "a"}  # the stranger wrote nothing


async def test_an_unreachable_database_is_a_tool_error() -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    kaizen = service.Kaizen.connect(url)
    try:
        async with Client(create_server(kaizen, user=Viewer("agent-1"))) as client:
            result = await client.call_tool("get_approval", {"request_id": "r-1"})
    finally:
        await kaizen.db.close()
    assert error_text(result).endswith("unavailable: the database is unreachable")
