"""Fixtures of the fault suite: private servers (one PostgreSQL, one MariaDB per run)
and load processes. With ``CI=true`` missing server programs fail the suite."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from servers import MariaDBServer, PostgresServer, missing_binaries

from dataflow import DataFlow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="session")
def fault_dir() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's own are private to root)."""
    missing = missing_binaries()
    if missing:
        message = f"fault tests need {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="dataflow-faults-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        db = DataFlow(url, connect_timeout=2)
        try:
            await db.ping()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        finally:
            await db.close()


def wait_until_up(url: str) -> None:
    """Block until the server behind ``url`` answers queries (after a start or restart)."""
    asyncio.run(_until_up(url))


@pytest.fixture(scope="session")
def pg_server(fault_dir: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(fault_dir / "pg")
    server.create()
    server.start()
    wait_until_up(server.url())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server(fault_dir: Path) -> Iterator[MariaDBServer]:
    server = MariaDBServer(fault_dir / "mariadb")
    server.create()
    server.start()
    wait_until_up(server.url())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[PostgresServer | MariaDBServer]:
    """The private server named by the test's parameter, running, with a fresh database."""
    name = request.param
    srv: PostgresServer | MariaDBServer = request.getfixturevalue(
        "pg_server" if name == "postgresql" else "mariadb_server"
    )
    if srv.pid is None:  # an earlier test left it down
        srv.start()
    srv.thaw()
    wait_until_up(srv.url())
    asyncio.run(_fresh_database(srv))
    yield srv
    srv.thaw()
    if srv.pid is None:
        srv.start()


async def _fresh_database(srv: PostgresServer | MariaDBServer) -> None:
    import asyncmy
    import asyncpg

    if isinstance(srv, PostgresServer):
        conn = await asyncpg.connect(srv.url(), timeout=5)
        try:
            await conn.execute("DROP DATABASE IF EXISTS faults WITH (FORCE)")
            await conn.execute("CREATE DATABASE faults")
        finally:
            await conn.close()
        return
    raw = await asyncmy.connect(host="127.0.0.1", port=srv.port, user="root", connect_timeout=5)
    try:
        async with raw.cursor() as cur:
            await cur.execute("DROP DATABASE IF EXISTS faults")
            await cur.execute("CREATE DATABASE faults CHARACTER SET utf8mb4")
    finally:
        raw.close()


@dataclass
class Load:
    """Load processes writing through one URL; their call logs."""

    url: str
    out: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *names: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(HERE)])}
        for name in names:
            self.procs[name] = subprocess.Popen(
                [sys.executable, str(HERE / "load_worker.py"), self.url, str(self.out), name],
                env=env,
            )

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        names = [name] if name else list(self.procs)
        found = []
        for n in names:
            path = self.out / f"{n}.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    if line.endswith("}"):  # a line cut short by kill -9 is not an ack
                        found.append({**json.loads(line), "worker": n})
        return found

    def acked_after(self, name: str, since: float) -> int:
        return sum(len(c["ids"]) for c in self.calls(name) if c["ok"] and c["t0"] >= since)

    def wait_for(self, done: Callable[[], bool], what: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            for name, proc in self.procs.items():
                if proc.poll() is not None and proc.returncode != -9:
                    raise AssertionError(f"load process {name} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        self.procs[name].kill()
        self.procs[name].wait(10)

    def stop(self) -> None:
        (self.out / "stop").touch()
        for name, proc in self.procs.items():
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise AssertionError(f"load process {name} did not stop") from None
            assert code in (0, -9), f"load process {name} exited with {code}"

    def acked_ids(self) -> set[str]:
        return {i for c in self.calls() if c["ok"] for i in c["ids"]}


@pytest.fixture
def load(tmp_path: Path) -> Iterator[Callable[[str], Load]]:
    made: list[Load] = []

    def make(url: str) -> Load:
        out = tmp_path / f"load{len(made)}"
        out.mkdir()
        made.append(Load(url, out))
        return made[-1]

    yield make
    for loaded in made:
        (loaded.out / "stop").touch()
        for proc in loaded.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
