"""One session carried across the three channels on every database: created over the
HTTP API, updated at the same time over the API, by ``kaizen sessions update`` in
another OS process and over MCP; every key survives and every channel is recorded."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
from mcp_support import Connect, structured

from kaizen import service
from kaizen.api import create_app
from kaizen.api.auth import tokens_from_env

USER, TOKEN = "agent-1", "tok-agent-1-5e2d"


@pytest.fixture
async def api(kaizen: service.Kaizen) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP API in-process on the test database, as :data:`USER`."""
    app = create_app(kaizen, tokens=tokens_from_env(f"{USER}={TOKEN}"))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", headers=headers
    ) as http:
        yield http


async def _cli_update(db_url: str, session_id: str, state: dict[str, object]) -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kaizen.cli", "--db", db_url, "sessions", "update"),
        *(session_id, "--state", json.dumps(state), "--as", USER),
        stdout=asyncio.subprocess.DEVNULL,
    )
    assert await process.wait() == 0


async def test_a_session_created_over_the_api_continues_over_the_cli_and_mcp(
    api: httpx.AsyncClient, connect: Connect, db_url: str
) -> None:
    created = await api.post("/api/sessions", json={"state": {"from": "api"}})
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]

    async with connect(USER) as mcp:

        async def over_api() -> None:
            answer = await api.patch(f"/api/sessions/{session_id}/state", json={"api_key": 1})
            assert answer.status_code == 200, answer.text

        async def over_mcp() -> None:
            state = {"mcp_key": [1, 2], "nested": {"a": None}}
            structured(
                await mcp.call_tool("session_update", {"session_id": session_id, "state": state})
            )

        await asyncio.gather(
            over_api(), over_mcp(), _cli_update(db_url, session_id, {"cli_key": "x"})
        )
        seen_by_mcp = structured(await mcp.call_tool("session_get", {"session_id": session_id}))

    seen_by_api = (await api.get(f"/api/sessions/{session_id}")).json()
    expected = {
        "from": "api",
        "api_key": 1,
        "cli_key": "x",
        "mcp_key": [1, 2],
        "nested": {"a": None},
    }
    created_at = created.json()["channel_activity"]["api"]
    for seen in (seen_by_mcp, seen_by_api):
        assert seen["state"] == expected
        activity = seen["channel_activity"]
        assert {"api", "cli", "mcp"} <= set(activity)
        assert activity["api"] > created_at  # the PATCH was recorded, not only the POST
