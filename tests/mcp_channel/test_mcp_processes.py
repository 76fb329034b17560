"""``kaizen mcp`` as a real subprocess, over stdio and over streamable HTTP on 127.0.0.1,
driven by the MCP SDK's client, with decisions made by other OS processes
(``kaizen approvals approve``), on every database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx2
import pytest
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_support import AGENT, LEAD, error_text, structured

from kaizen import service
from kaizen.api.token_admin import add_token, revoke_tokens
from kaizen.cli import build_parser, main
from kaizen.mcp import TOOLS

KAIZEN = [sys.executable, "-m", "kaizen.cli"]


@pytest.fixture
async def policy(db_url: str) -> str:
    """The test database with a stored policy routing :data:`AGENT` to :data:`LEAD`."""
    async with service.Kaizen.open(db_url) as k:
        await service.set_policy(k, AGENT, approvers=[LEAD], timeout_seconds=600)
    return db_url


def _stdio(url: str, user: str, errlog: TextIO = sys.stderr) -> Client:
    """An MCP client of ``kaizen mcp --user USER`` started as a subprocess (its stderr
    to ``errlog``)."""
    argv = [*KAIZEN[1:], "--db", url, "mcp", "--user", user]
    return Client(stdio_client(StdioServerParameters(command=sys.executable, args=argv), errlog))


async def _approve_elsewhere(url: str, request_id: str, *extra: str) -> asyncio.subprocess.Process:
    """Start ``kaizen approvals approve`` as the lead, in another process."""
    return await asyncio.create_subprocess_exec(
        *KAIZEN,
        "--db",
        url,
        "approvals",
        "approve",
        request_id,
        "--as",
        LEAD,
        *extra,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def _wait_approved_by_another_process(client: Client, url: str) -> dict[str, Any]:
    """``request_approval`` with a wait, approved (edited) by another process meanwhile."""
    approving: list[asyncio.subprocess.Process] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if not approving:  # the first progress names the request: now decide it elsewhere
            request_id = (message or "").split()[2]
            edited = json.dumps({"env": "staging"})
            approving.append(await _approve_elsewhere(url, request_id, "--metadata", edited))

    result = await client.call_tool(
        "request_approval",
        {"external_agent_id": AGENT, "metadata": {"env": "prod"}, "wait_seconds": 120},
        progress_callback=on_progress,
    )
    assert approving and await approving[0].wait() == 0
    return structured(result)


async def test_stdio_waits_for_a_decision_made_by_another_process(policy: str) -> None:
    async with _stdio(policy, "agent-1") as client:
        assert {t.name for t in (await client.list_tools()).tools} == set(TOOLS)
        answer = await _wait_approved_by_another_process(client, policy)
        assert (answer["status"], answer["decided_by"]) == ("approved", LEAD)
        assert answer["approved_metadata"] == {"env": "staging"}
        bad = await client.call_tool("request_approval", {"external_agent_id": AGENT})
        assert "metadata" in error_text(bad)


async def test_stdio_cancellation_leaves_the_request_pending(policy: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as errlog:
        async with _stdio(policy, "agent-1", errlog) as client:
            waiting: asyncio.Queue[str] = asyncio.Queue()

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                waiting.put_nowait((message or "").split()[2])

            call = asyncio.create_task(
                client.call_tool(
                    "request_approval",
                    {"external_agent_id": AGENT, "metadata": {}, "wait_seconds": 600},
                    progress_callback=on_progress,
                )
            )
            request_id = await waiting.get()
            call.cancel()  # the client gives up: it sends notifications/cancelled
            with pytest.raises(asyncio.CancelledError):
                await call
            got = structured(await client.call_tool("get_approval", {"request_id": request_id}))
            assert got["status"] == "pending" and got["votes"] == []
    # The server stopped waiting (it says so), and the request is as it was.
    stopped = f"stopped waiting for approval request {request_id}: the call was cancelled"
    assert stopped in log.read_text()
    async with service.Kaizen.open(policy) as k:  # as stored, seen by another connection
        assert (await service.get_approval(k, request_id))["status"] == "pending"


def test_stdio_needs_a_user(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "mcp"]) == 2
    assert "stdio needs --user" in capsys.readouterr().err
    assert main(["mcp", "--http", "--user", "x"]) == 2
    assert "--user is for stdio" in capsys.readouterr().err
    assert main(["mcp", "--user", " x"]) == 2
    assert "whitespace" in capsys.readouterr().err


def test_http_start_failures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAIZEN_API_TOKENS", raising=False)
    monkeypatch.delenv("KAIZEN_API_TOKENS_FILE", raising=False)
    db = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "mcp", "--http"]
    assert main([*db, "--port", str(_free_port())]) == 10  # no token source at all
    assert "no API tokens configured" in capsys.readouterr().err
    tokens = tmp_path / "tokens.json"
    _add_token(tokens, "agent-1")
    with_tokens = [*db, "--tokens", str(tokens)]
    assert main([*with_tokens, "--host", "0.0.0.0"]) == 2
    assert "every interface" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main([*with_tokens, "--port", str(busy.getsockname()[1])]) == 9
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "k.db").exists()  # nothing was started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _add_token(tokens: Path, user: str, role: str = "user") -> str:
    """What ``kaizen tokens add`` does: a new token of ``user`` (its hash in ``tokens``)."""
    token, _ = add_token(tokens, user, role=role)
    return token


@contextlib.contextmanager
def _http_server(url: str, tokens: Path) -> Iterator[str]:
    """``kaizen mcp --http`` on a free loopback port; its endpoint URL."""
    port = _free_port()
    server = subprocess.Popen(
        [*KAIZEN, "--db", url, "mcp", "--http", "--port", str(port), "--tokens", str(tokens)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            assert server.poll() is None, server.communicate()[1]
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.asynccontextmanager
async def _http_client(endpoint: str, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx2.Timeout(30, read=300)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(endpoint, http_client=http)) as client,
    ):
        yield client


async def test_http_with_the_token_store_of_kaizen_serve(policy: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    agent, stranger = _add_token(tokens, "agent-1"), _add_token(tokens, "stranger")
    admin = _add_token(tokens, "root", "admin")
    with _http_server(policy, tokens) as endpoint:
        async with httpx2.AsyncClient() as http:  # no token, a bad token: 401, no MCP at all
            ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            assert (await http.post(endpoint, json=ping)).status_code == 401
            bad = {"Authorization": "Bearer nope"}
            assert (await http.post(endpoint, json=ping, headers=bad)).status_code == 401
        async with _http_client(endpoint, agent) as client:
            assert {t.name for t in (await client.list_tools()).tools} == set(TOOLS)
            answer = await _wait_approved_by_another_process(client, policy)
            assert answer["status"] == "approved"
            pending = structured(
                await client.call_tool(
                    "request_approval", {"external_agent_id": AGENT, "metadata": {}}
                )
            )
            session = structured(await client.call_tool("session_create", {}))
        mine = [answer["request_id"], pending["request_id"]]
        async with _http_client(endpoint, stranger) as client:
            assert structured(await client.call_tool("list_pending_approvals", {}))["items"] == []
            for request_id in mine:
                got = await client.call_tool("get_approval", {"request_id": request_id})
                assert "not_found" in error_text(got)
            for tool, arguments in (
                ("session_get", {}),
                ("session_update", {"state": {"stolen": True}}),
            ):
                got = await client.call_tool(
                    tool, {"session_id": session["session_id"], **arguments}
                )
                assert "not_found" in error_text(got)
        async with _http_client(endpoint, admin) as client:  # an admin token reads everything
            listed = structured(await client.call_tool("list_pending_approvals", {}))
            assert [a["id"] for a in listed["items"]] == [pending["request_id"]]
            got = structured(
                await client.call_tool("session_get", {"session_id": session["session_id"]})
            )
            assert got["state"] == {}  # the stranger wrote nothing


async def test_http_in_process_refuses_a_token_revoked_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAIZEN_API_TOKENS", raising=False)
    url = f"sqlite:///{tmp_path / 'k.db'}"
    tokens = tmp_path / "tokens.json"
    agent = _add_token(tokens, "agent-1")
    port = _free_port()
    args = build_parser().parse_args(
        ["mcp", "--http", "--port", str(port), "--tokens", str(tokens), "--log-level", "error"]
    )
    args.database_url = url
    server = asyncio.create_task(args.handler(args))
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.02)
        endpoint = f"http://127.0.0.1:{port}/mcp"
        async with _http_client(endpoint, agent) as client:
            session = structured(await client.call_tool("session_create", {"ttl_hours": 1}))
            assert session["user_id"] == "agent-1"
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        bearer = {"Authorization": f"Bearer {agent}"}
        async with httpx2.AsyncClient() as http:
            accepted = await http.post(endpoint, json=listing, headers=bearer)
            revoke_tokens(tokens, "agent-1")  # the running server reloads the file
            refused = await http.post(endpoint, json=listing, headers=bearer)
        assert accepted.status_code != 401 and refused.status_code == 401
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
