"""Faults under load, on private servers: kill -9 and restart, SIGSTOP, a server that
never answers; for SQLite, a writer process killed mid-load and a lock holder that
freezes and dies.

Each scenario runs two load processes (``load_worker.py``) writing through one
DataFlow each, and checks the figures the library promises: no acknowledged
write is lost, every call ends within its time limits plus one second with an
error of our tree, and the same DataFlow recovers by itself afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_load import Load

from dataflow import DataFlow, TimeoutError
from servers import MariaDBServer, PostgresServer

NETWORK = pytest.mark.parametrize("server", ["postgresql", "mysql"], indirect=True)
#: Every limit at 1 s: a call waits for a connection, opens one, and runs statements.
LIMITS = "connect_timeout=1&pool_timeout=1&command_timeout=1"
#: The longest a call may take: the one limit it runs into (each load process has one
#: task, so none waits for the pool) plus the one second of slack the library promises.
BOUND = 1 + 1
WORKERS = ("w1", "w2")


async def _stored(url: str) -> set[str]:
    db = DataFlow(url)

    @db.model(table="fault_row")
    class FaultRow:
        id: str
        worker: str
        n: int

    try:
        return {r["id"] for r in await db.select(FaultRow)}
    finally:
        await db.close()


def _report(load: Load, stored: set[str]) -> dict[str, Any]:
    calls = load.calls()
    failures = [c for c in calls if not c["ok"]]
    acked = load.acked_ids()
    return {
        "calls": len(calls),
        "failed": len(failures),
        "acknowledged": len(acked),
        "lost": sorted(acked - stored),
        "foreign_errors": sorted({c["error"] for c in failures if not c["ours"]}),
        "slowest_call_s": round(max(c["dt"] for c in calls), 2),
        "errors": sorted({c["error"].split(":")[0] for c in failures}),
    }


def _check(figures: dict[str, Any], *, bound: float) -> None:
    print(figures)  # the figures, shown with -s
    assert figures["failed"], "the fault was not seen by the load"
    assert figures["lost"] == [], "acknowledged writes are missing"
    assert figures["foreign_errors"] == [], "errors from outside our tree"
    assert figures["slowest_call_s"] <= bound, "a call outlived its time limits"


def _recovered(load: Load, since: float, writes: int = 20) -> Callable[[], bool]:
    return lambda: all(load.acked_after(n, since) >= writes for n in WORKERS)


@NETWORK
def test_kill_9_mid_load_then_restart(
    server: PostgresServer | MariaDBServer, load: Callable[[str], Load]
) -> None:
    url = server.url("faults", LIMITS)
    ld = load(url)
    ld.start(*WORKERS)
    ld.wait_for(_recovered(ld, 0), "the load to start")
    server.kill()
    time.sleep(1.5)  # writes fail meanwhile: refused connections
    server.start()
    up = time.monotonic()
    ld.wait_for(_recovered(ld, up), "the same DataFlows to write again after the restart")
    ld.stop()
    _check(_report(ld, asyncio.run(_stored(url))), bound=BOUND)


@NETWORK
def test_a_frozen_server_ends_every_call_in_time(
    server: PostgresServer | MariaDBServer, load: Callable[[str], Load]
) -> None:
    url = server.url("faults", LIMITS)
    ld = load(url)
    ld.start(*WORKERS)
    ld.wait_for(_recovered(ld, 0), "the load to start")
    server.freeze()
    frozen = time.monotonic()
    time.sleep(4)
    server.thaw()
    thawed = time.monotonic()
    ld.wait_for(_recovered(ld, thawed), "the load to recover after SIGCONT")
    ld.stop()
    figures = _report(ld, asyncio.run(_stored(url)))
    _check(figures, bound=BOUND)
    during = [c for c in ld.calls() if frozen + 0.1 <= c["t0"] and c["t0"] + c["dt"] <= thawed]
    assert during and not any(c["ok"] and c["op"] != "count" for c in during)
    assert "dataflow.errors.TimeoutError" in figures["errors"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("family", ["postgresql", "mysql"])
def test_a_server_that_never_answers_is_a_connect_timeout(family: str, silent_port: int) -> None:
    url = f"{family}://user:s3cret@127.0.0.1:{silent_port}/db?connect_timeout=1"

    async def ping() -> None:
        db = DataFlow(url)
        try:
            await db.ping()
        finally:
            await db.close()

    started = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        asyncio.run(ping())
    assert time.monotonic() - started <= 1 + 1
    assert info.value.what == "connect" and "connect_timeout" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("family", ["postgresql", "mysql"])
def test_the_cli_against_a_silent_server_exits_6_in_time(family: str, silent_port: int) -> None:
    url = f"{family}://root:s3cret@127.0.0.1:{silent_port}/db?connect_timeout=1"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "--db", url, "approvals", "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 6, done.stderr
    assert time.monotonic() - started <= 1 + 1 + 3  # the limit, 1 s, and starting Python
    assert "timed out" in done.stderr and "s3cret" not in done.stderr


# -- SQLite: the database is embedded, so the processes themselves fail --------


def test_sqlite_writer_killed_mid_load_loses_nothing_acknowledged(
    tmp_path: Path, load: Callable[[str], Load]
) -> None:
    url = f"sqlite:///{tmp_path / 'faults.db'}?busy_timeout=1"
    ld = load(url)
    ld.start(*WORKERS)
    ld.wait_for(_recovered(ld, 0), "the load to start")
    ld.kill("w1")  # kill -9, at any point of its work
    killed = time.monotonic()
    ld.start("w1-again")
    ld.wait_for(
        lambda: ld.acked_after("w1-again", killed) >= 20 and ld.acked_after("w2", killed) >= 20,
        "the others to go on writing",
    )
    ld.stop()
    figures = _report(ld, asyncio.run(_stored(url)))
    print(figures)
    assert figures["lost"] == [] and figures["foreign_errors"] == []


_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO fault_row (id, worker, n, created_at, updated_at) "
             "VALUES ('locker', 'locker', 0, '', '')")
print("locked", flush=True)
time.sleep(3600)
"""


def test_sqlite_lock_holder_frozen_then_killed(tmp_path: Path, load: Callable[[str], Load]) -> None:
    path = tmp_path / "faults.db"
    url = f"sqlite:///{path}?busy_timeout=1"
    ld = load(url)
    ld.start(*WORKERS)
    ld.wait_for(_recovered(ld, 0), "the load to start")
    locker = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        os.kill(locker.pid, signal.SIGSTOP)  # frozen while it holds the write lock
        time.sleep(3)
    finally:
        locker.kill()  # and dies without committing
        locker.wait(10)
    freed = time.monotonic()
    ld.wait_for(_recovered(ld, freed), "the writers to recover")
    ld.stop()
    stored = asyncio.run(_stored(url))
    figures = _report(ld, stored)
    _check(figures, bound=1 + 1)  # busy_timeout + 1 s
    assert "dataflow.errors.ConcurrencyError" in figures["errors"]
    assert "locker" not in stored  # its transaction died with it
