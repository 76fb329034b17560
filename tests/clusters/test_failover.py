"""Failover under load, on clusters of the test's own (the shared targets stay up).

PostgreSQL: a primary and a synchronous standby behind one multi-host URL
(standby first, ``target_session_attrs=read-write``); the primary is killed
(kill -9, its whole process tree) mid-load and the standby promoted. Galera: one
of three nodes is killed mid-load. Writers are separate processes doing approval
requests and session merges; each keeps its one DataFlow throughout.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_support import Worker, causal

from dataflow import DataFlow
from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
from kaizen.governance import _deadlines as approval_module
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage
from servers import GaleraCluster, PgHaCluster, missing_binaries


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    missing = missing_binaries(galera=True)
    if missing:  # the machine lacks a server program: ./run test installs them
        message = f"the cluster tests need {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    path = Path(tempfile.mkdtemp(prefix="dataflow-failover-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_pair(base: Path) -> Iterator[PgHaCluster]:
    """A fresh pair for each test: a failover leaves it without a standby."""
    cluster = PgHaCluster(Path(tempfile.mkdtemp(prefix="pg-", dir=base)))
    cluster.create()
    cluster.start()
    cluster.create_database("ha")
    yield cluster
    cluster.stop()


@pytest.fixture
def galera(base: Path) -> Iterator[GaleraCluster]:
    cluster = GaleraCluster(Path(tempfile.mkdtemp(prefix="galera-", dir=base)))
    cluster.create()
    cluster.start()
    cluster.nodes[0].sql("CREATE DATABASE ha CHARACTER SET utf8mb4")
    yield cluster
    cluster.stop()


class Writers:
    """``load`` workers and their call logs."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.workers: dict[str, Worker] = {}

    async def start(self, name: str, url: str, session: str) -> None:
        self.workers[name] = await Worker.start(
            "load",
            url=url,
            session=session,
            name=name,
            stop=str(self.out / "stop"),
            log=str(self.out / f"{name}.jsonl"),
        )

    def calls(self, name: str) -> list[dict[str, Any]]:
        path = self.out / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def acked(self, name: str, since: float = 0) -> int:
        return sum(1 for c in self.calls(name) if c["ok"] and c["t0"] >= since)

    async def until(self, done: Callable[[], bool], what: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        (self.out / "stop").touch()
        for worker in self.workers.values():
            await worker.result()

    def acknowledged(self) -> tuple[set[str], set[str]]:
        requests, keys = set(), set()
        for name in self.workers:
            for c in self.calls(name):
                if c["ok"] and "request" in c:
                    requests.add(c["request"])
                if c["ok"] and "key" in c:
                    keys.add(c["key"])
        return requests, keys


async def _session(url: str) -> str:
    async with DataFlow(url) as db:
        manager = NexusSessionManager(storage_backend=SessionStorage(db))
        return (await manager.create_session_async(user_id="writers", ttl_hours=2)).session_id


async def _missing(url: str, session: str, writers: Writers) -> tuple[set[str], set[str]]:
    """Acknowledged requests and state keys that ``url`` does not have."""
    requests, keys = writers.acknowledged()
    async with DataFlow(url) as db:
        storage = ExternalAgentApprovalStorage(db)
        lost = {r for r in requests if await storage.load(r) is None}
        loaded = await NexusSessionManager(storage_backend=SessionStorage(db)).load_session_async(
            session
        )
    assert loaded is not None
    return lost, keys - set(loaded.state)


async def test_postgresql_failover_loses_nothing_acknowledged(
    pg_pair: PgHaCluster, tmp_path: Path
) -> None:
    url = pg_pair.url("ha", "connect_timeout=1&command_timeout=3")
    session = await _session(url)
    writers = Writers(tmp_path)
    names = ("pg-1", "pg-2")
    for name in names:
        await writers.start(name, url, session)
    await writers.until(lambda: all(writers.acked(n) >= 20 for n in names), "the load to start")
    await asyncio.to_thread(pg_pair.failover)
    promoted = time.monotonic()
    await writers.until(
        lambda: all(writers.acked(n, promoted) >= 20 for n in names),
        "the writers to resume on the promoted standby with the same DataFlow",
    )
    await writers.stop()
    calls = [c for n in names for c in writers.calls(n)]
    failed = [c for c in calls if not c["ok"]]
    resumed = [
        min(c["t0"] for c in writers.calls(n) if c["ok"] and c["t0"] >= promoted) - promoted
        for n in names
    ]
    print({"calls": len(calls), "failed": len(failed), "resumed_after_s": resumed})
    assert all(c["ours"] for c in failed), {c["error"] for c in failed}
    assert max(c["dt"] for c in calls) <= 3 + 1  # no call outlived its limits
    standby_only = pg_pair.standby.url("ha")  # the new primary, asked directly
    assert await _missing(standby_only, session, writers) == (set(), set())


async def test_a_galera_node_killed_mid_load(galera: GaleraCluster, tmp_path: Path) -> None:
    urls = [galera.url(i, "ha", "connect_timeout=1&command_timeout=10") for i in range(3)]
    session = await _session(urls[0])
    writers = Writers(tmp_path)
    for i in range(3):
        for j in (1, 2):
            await writers.start(f"node{i + 1}-{j}", urls[i], session)
    survivors = [n for n in writers.workers if not n.startswith("node3")]
    doomed = [n for n in writers.workers if n.startswith("node3")]
    await writers.until(
        lambda: all(writers.acked(n) >= 10 for n in writers.workers), "the load to start"
    )
    await asyncio.to_thread(galera.nodes[2].kill)
    killed = time.monotonic()
    await writers.until(
        lambda: all(writers.acked(n, killed) >= 20 for n in survivors),
        "the writers on the other nodes to go on",
    )
    await writers.stop()
    after = {n: [c for c in writers.calls(n) if c["t0"] >= killed] for n in writers.workers}
    survivor_failures = [c for n in survivors for c in after[n] if not c["ok"]]
    doomed_calls = [c for n in doomed for c in after[n]]
    print(
        {
            "survivor_calls": sum(len(after[n]) for n in survivors),
            "survivor_failures": len(survivor_failures),
            "dead_node_calls": len(doomed_calls),
            "dead_node_slowest_s": round(max(c["dt"] for c in doomed_calls), 2),
        }
    )
    assert survivor_failures == []  # the writers on the other nodes never stopped
    assert doomed_calls and not any(c["ok"] for c in doomed_calls[1:])
    assert all(c["ours"] for c in doomed_calls if not c["ok"])
    assert max(c["dt"] for c in doomed_calls[1:]) <= 1 + 1  # they fail fast
    assert await _missing(causal(urls[0]), session, writers) == (set(), set())


async def test_the_notify_listener_follows_the_promoted_standby(
    pg_pair: PgHaCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Waiters re-read only hourly here: only a NOTIFY from the new primary wakes them.
    monkeypatch.setattr(approval_module, "_RECHECK_SECONDS", 3600.0)
    url = pg_pair.url("ha", "connect_timeout=1&command_timeout=3")
    async with DataFlow(url) as db, DataFlow(url) as other:
        manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
        manager.set_approvers("agent", ["lead"])
        request_id = await manager.request_approval("agent", "user", {})
        waiter = asyncio.create_task(manager.wait_for_approval(request_id, timeout=3600))
        await asyncio.sleep(0.5)  # listening on the primary
        await asyncio.to_thread(pg_pair.failover)
        deciding = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(other))
        deciding.set_approvers("agent", ["lead"])
        for _ in range(100):  # the listener re-listens on the new primary by itself
            if (
                pg_pair.standby.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %'"
                )
                == "1"
            ):
                break
            await asyncio.sleep(0.1)
        await deciding.approve_request(request_id, "lead")
        assert await asyncio.wait_for(waiter, 30) is True
