"""The PostgreSQL NOTIFY listener comes back after a server restart, by itself."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from dataflow import DataFlow
from dataflow.dialects import pg_listen
from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
from kaizen.governance import _deadlines as approval_module
from servers import PostgresServer


async def _listener_pid(server: PostgresServer, seconds: float = 30) -> int:
    """The backend of the connection listening for decisions (waits until there is one)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn = await asyncpg.connect(server.url("faults"), timeout=2)
            try:
                pid = await conn.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN %' LIMIT 1"
                )
            finally:
                await conn.close()
            if pid is not None:
                return int(pid)
        except (OSError, asyncpg.PostgresError):
            pass  # the server is still starting
        if time.monotonic() > deadline:
            raise AssertionError("nobody listens for approval decisions")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_wait_for_approval_is_woken_by_notify_after_a_restart(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiters re-read only hourly here: only a NOTIFY can wake the waiter in time.
    monkeypatch.setattr(approval_module, "_RECHECK_SECONDS", 3600.0)
    asyncio.run(_scenario(server))


def _manager(db: DataFlow) -> ExternalAgentApprovalManager:
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.set_approvers("agent", ["lead"])
    return manager


async def _scenario(server: PostgresServer) -> None:
    url = server.url("faults", "connect_timeout=2&command_timeout=5")
    async with DataFlow(url) as db, DataFlow(url) as other:
        manager = _manager(db)
        request_id = await manager.request_approval("agent", "user", {})
        await manager.get_request(request_id)  # tables checked: the waiter only reads, then waits
        waiter = asyncio.create_task(manager.wait_for_approval(request_id, timeout=3600))
        before = await _listener_pid(server)
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start)
        after = await _listener_pid(server)
        assert after != before  # a new connection, made by the same DataFlow
        assert not waiter.done()
        await _manager(other).approve_request(request_id, "lead")
        assert await asyncio.wait_for(waiter, 30) is True


@pytest.mark.parametrize("server", ["postgresql"], indirect=True)
def test_a_listener_notices_a_frozen_server_and_comes_back(
    server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen (or half-open) connection never terminates: only the probe finds out.
    monkeypatch.setattr(pg_listen, "PROBE_SECONDS", 0.3)
    asyncio.run(_frozen(server))


async def _frozen(server: PostgresServer) -> None:
    db = DataFlow(server.url("faults", "connect_timeout=1"))
    async with db, db.listen("faults_channel") as queue:
        await asyncio.to_thread(server.freeze)
        await asyncio.sleep(2.5)
        await asyncio.to_thread(server.thaw)
        # It reconnected by itself, and says so: what was sent meanwhile is unknown.
        assert await asyncio.wait_for(queue.get(), 30) is None
        sender = await asyncpg.connect(server.url("faults"), timeout=5)
        try:
            await sender.execute("SELECT pg_notify('faults_channel', 'hello')")
        finally:
            await sender.close()
        assert await asyncio.wait_for(queue.get(), 10) == "hello"
