"""Fixtures of the fault suite: private servers (one PostgreSQL, one MariaDB per run)
and load processes. With ``CI=true`` missing server programs fail the suite."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_load import Load

from dataflow import DataFlow
from servers import MariaDBServer, PostgresServer, missing_binaries

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
