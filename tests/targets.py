"""The database targets of the test suite, table-driven.

``TARGETS`` names every database the suite knows: the three single servers
(SQLite, PostgreSQL on 5432, MariaDB on 3306) and two clusters the suite starts
itself on loopback (``tests/servers.py``): a 3-node MariaDB Galera cluster and a
PostgreSQL primary with a synchronous standby, reached through a multi-host URL.
The ``db``/``db_url`` fixtures (``tests/conftest.py``) run a test once per single
server, on freshly emptied tables; the contract suite (``tests/contract/``) and
the cluster tests also run on the clusters. With ``CI=true`` an unreachable
target fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import pytest

from servers import GALERA_PORTS, PG_HA_PORTS

PG_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
# Each pytest run gets its own databases, so concurrent runs never clobber each other.
DB_NAME = f"dataflow_test_{os.getpid()}"


@dataclass(frozen=True)
class Target:
    """One database the tests run on.

    Attributes:
        name: Its parameter id (``sqlite``, ``postgresql``, ``mysql``, ``galera``, ``pg-ha``).
        urls: The URL of each entry point to the run's test database (one per Galera
            node; the multi-host URL of the PostgreSQL pair), the first for ``db``.
        admin: ``(host, port)`` of the server that creates and drops databases.
    """

    name: str
    urls: Callable[[str], list[str]]
    admin: tuple[str, int] | None = None

    @property
    def family(self) -> str:
        return {"galera": "mysql", "pg-ha": "postgresql"}.get(self.name, self.name)

    async def reset(self) -> None:
        """Empty the run's test database (creating it on first use)."""
        if self.family == "postgresql":
            await _reset_postgres(self)
        elif self.family == "mysql":
            await _reset_mysql(self)

    async def drop(self) -> None:
        if self.family == "postgresql":
            await _pg_admin(self, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        elif self.family == "mysql":
            await _mysql(self, f"DROP DATABASE IF EXISTS `{DB_NAME}`")


def _pg(port: int) -> Callable[[str], list[str]]:
    return lambda db: [f"postgresql://postgres@{PG_HOST}:{port}/{db}"]


def _galera(db: str) -> list[str]:
    return [f"mysql://root@127.0.0.1:{port}/{db}" for port in GALERA_PORTS]


def _pg_ha(db: str) -> list[str]:
    primary, standby = PG_HA_PORTS
    hosts = f"127.0.0.1:{standby},127.0.0.1:{primary}"  # the standby first: it is skipped
    return [f"postgresql://postgres@{hosts}/{db}?target_session_attrs=read-write"]


TARGETS: dict[str, Target] = {
    "sqlite": Target("sqlite", lambda path: [f"sqlite:///{path}"]),
    "postgresql": Target("postgresql", _pg(5432), (PG_HOST, 5432)),
    "mysql": Target(
        "mysql", lambda db: [f"mysql://root@{MYSQL_HOST}:3306/{db}"], (MYSQL_HOST, 3306)
    ),
    "galera": Target("galera", _galera, ("127.0.0.1", GALERA_PORTS[0])),
    "pg-ha": Target("pg-ha", _pg_ha, ("127.0.0.1", PG_HA_PORTS[0])),
}
#: The single servers: what ``db`` runs on everywhere.
DATABASES = ("sqlite", "postgresql", "mysql")
#: The clusters: the contract suite and the cluster tests run on them too.
CLUSTERS = ("galera", "pg-ha")
_reachable: dict[str, str | None] = {}
_created: set[str] = set()


async def _pg_admin(target: Target, sql: str, database: str = "postgres") -> None:
    import asyncpg

    assert target.admin is not None
    host, port = target.admin
    conn = await asyncpg.connect(
        host=host, port=port, user="postgres", database=database, timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _reset_postgres(target: Target) -> None:
    if target.name not in _created:
        await _pg_admin(target, f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await _pg_admin(target, f'CREATE DATABASE "{DB_NAME}"')
        if target.name == "pg-ha":
            await _replayed(PG_HA_PORTS[1], DB_NAME)
        _created.add(target.name)
    await _pg_admin(target, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public", DB_NAME)


async def _replayed(standby_port: int, database: str, seconds: float = 30) -> None:
    """Wait until the standby has replayed the creation of ``database``: the multi-host URL
    lists it first, and a host without the database is an error, not a host to skip."""
    import asyncpg

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        conn = await asyncpg.connect(
            host="127.0.0.1", port=standby_port, user="postgres", database="postgres", timeout=5
        )
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                return
        finally:
            await conn.close()
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"the standby never replayed CREATE DATABASE {database}")
        await asyncio.sleep(0.05)


async def _mysql(target: Target, sql: str) -> None:
    import asyncmy

    assert target.admin is not None
    host, port = target.admin
    conn = await asyncmy.connect(host=host, port=port, user="root", password="", connect_timeout=5)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()


async def _reset_mysql(target: Target) -> None:
    # Dropping and re-creating the database is the quickest way to empty it.
    await _mysql(target, f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    await _mysql(target, f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4")
    _created.add(target.name)
    urls = target.urls(DB_NAME)
    if len(urls) > 1:  # Galera: the other nodes apply the DDL a moment after it returns
        for url in urls:
            await _until_created(urlsplit(url))


async def _until_created(node: SplitResult, seconds: float = 20) -> None:
    import asyncmy

    deadline = time.monotonic() + seconds
    conn = await asyncmy.connect(host=node.hostname, port=node.port, user="root", password="")
    try:
        async with conn.cursor() as cur:
            while True:
                sql = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
                await cur.execute(sql, (DB_NAME,))
                if (await cur.fetchone())[0]:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"database {DB_NAME} never reached node {node.port}")
                await asyncio.sleep(0.02)
    finally:
        conn.close()


def drop_created() -> None:
    """Drop the databases this run created."""
    for name in _created:
        with contextlib.suppress(Exception):  # best effort clean-up
            asyncio.run(TARGETS[name].drop())


def reset_database(name: str) -> None:
    """Empty the test database of target ``name``, or fail/skip if it is unreachable."""
    if name == "sqlite":
        return
    target = TARGETS[name]
    error = _reachable.get(name, "unchecked")
    if error == "unchecked":
        try:
            asyncio.run(target.reset())
            error = None
        except Exception as exc:  # any failure means unreachable
            error = f"{type(exc).__name__}: {exc}"
        _reachable[name] = error
    else:
        asyncio.run(target.reset())
    if error is not None:
        hint = " (./run test starts the clusters)" if name in CLUSTERS else ""
        message = f"{name} test database unreachable{hint} ({error})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def target_urls(name: str, tmp_path: Path) -> list[str]:
    """Every entry point of target ``name`` to an empty test database."""
    reset_database(name)
    return TARGETS[name].urls(str(tmp_path / "test.db") if name == "sqlite" else DB_NAME)
