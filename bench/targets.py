"""The databases a run measures: reachability, bench databases, raw connections.

Each network database gets its own ``dataflow_bench`` database, dropped and
re-created at the start of a run, so test suites running at the same time on
``test`` or their per-run databases are never disturbed. SQLite uses a file in
a temporary directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.capture import (
    AiosqliteReplayer,
    AsyncmyReplayer,
    AsyncpgReplayer,
    Replayer,
    SQLite3Replayer,
)

__all__ = [
    "ALL_DATABASES",
    "CLUSTER_DATABASES",
    "BENCH_DB",
    "drop_target",
    "Target",
    "open_replayer",
    "open_replayers",
    "prepare_target",
    "sqlite_target",
]

ALL_DATABASES = ("sqlite", "postgresql", "mysql")
#: The clusters the test suite runs (tests/servers.py), measured on request.
CLUSTER_DATABASES = ("pg-ha", "galera")
FAMILIES = {"pg-ha": "postgresql", "galera": "mysql"}
BENCH_PREFIX = "dataflow_bench"
#: One database per run, so two runs (or a run and the tests) never share tables.
BENCH_DB = f"{BENCH_PREFIX}_{os.getpid()}"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
#: The PostgreSQL primary + synchronous standby and the first Galera node of tests/servers.py.
PG_HA_ADMIN = os.environ.get("BENCH_PG_HA_URL", "postgresql://postgres@127.0.0.1:5501/postgres")
PG_HA_STANDBY = os.environ.get("BENCH_PG_HA_STANDBY", "127.0.0.1:5502")
GALERA_ADMIN = os.environ.get("BENCH_GALERA_URL", "mysql://root@127.0.0.1:4401/mysql")
ADMINS = {
    "postgresql": PG_ADMIN,
    "mysql": MYSQL_ADMIN,
    "pg-ha": PG_HA_ADMIN,
    "galera": GALERA_ADMIN,
}
_TIMEOUT = 5.0


@dataclass
class Target:
    """One database of the run; ``error`` is set when it could not be reached."""

    name: str
    url: str = ""
    error: str | None = None
    server_version: str | None = None
    path: str | None = None  # SQLite file
    params: dict[str, Any] = field(default_factory=dict)
    synchronous: str = "full"  # SQLite: PRAGMA synchronous of ours (the default) and of raw

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def family(self) -> str:
        """``sqlite``, ``postgresql`` or ``mysql``: what the target runs."""
        return FAMILIES.get(self.name, self.name)

    @property
    def raw_drivers(self) -> tuple[str, ...]:
        return {
            "postgresql": ("asyncpg",),
            "mysql": ("asyncmy",),
            "sqlite": ("aiosqlite", "sqlite3"),
        }[self.family]


def _params(url: str, default_port: int) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or default_port,
        "user": parts.username or ("postgres" if default_port == 5432 else "root"),
        "password": parts.password or "",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_databases(names: list[str], prefix: str = BENCH_PREFIX) -> list[str]:
    """Databases ``<prefix>_<pid>`` left by runs whose process is gone (killed before
    clean-up)."""
    prefix += "_"
    pids = {n: n.removeprefix(prefix) for n in names if n.startswith(prefix)}
    return [n for n, pid in pids.items() if pid.isdigit() and not _alive(int(pid))]


async def _pg_admin(admin: str, sql: str | None = None) -> tuple[Any, list[str]]:
    import asyncpg

    p = _params(admin, 5432)
    admin_db = urlsplit(admin).path.lstrip("/") or "postgres"
    conn = await asyncpg.connect(database=admin_db, timeout=_TIMEOUT, **p)
    try:
        if sql is not None:
            await conn.execute(sql)
        rows = await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", BENCH_PREFIX + "%"
        )
        return str(await conn.fetchval("SELECT version()")), [r[0] for r in rows]
    finally:
        await conn.close()


async def _prepare_postgres(t: Target) -> None:
    admin = ADMINS[t.name]
    t.server_version, existing = await _pg_admin(admin)
    for name in [*stale_databases(existing), BENCH_DB]:
        await _pg_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(admin, f'CREATE DATABASE "{BENCH_DB}"')
    p = _params(admin, 5432)
    t.params = {**p, "database": BENCH_DB}  # raw replays: on the primary itself
    auth = p["user"] + (f":{p['password']}" if p["password"] else "")
    t.url = f"postgresql://{auth}@{p['host']}:{p['port']}/{BENCH_DB}"
    if t.name == "pg-ha":  # ours through the multi-host URL, the standby listed first
        await _replayed(BENCH_DB)
        hosts = f"{PG_HA_STANDBY},{p['host']}:{p['port']}"
        t.url = f"postgresql://{auth}@{hosts}/{BENCH_DB}?target_session_attrs=read-write"


async def _replayed(database: str) -> None:
    """Wait until the standby has the new database (a host without it is an error)."""
    import asyncpg

    host, _, port = PG_HA_STANDBY.partition(":")
    for _ in range(200):
        conn = await asyncpg.connect(host=host, port=int(port), user="postgres", timeout=_TIMEOUT)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                return
        finally:
            await conn.close()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the standby never replayed CREATE DATABASE {database}")


async def mysql_admin(admin: str, *statements: str) -> tuple[str, list[str]]:
    """Run ``statements`` as the admin URL's user; the server version and its databases."""
    import asyncmy

    conn = await asyncmy.connect(connect_timeout=_TIMEOUT, **_params(admin, 3306))
    # asyncmy logs server warnings; "database doesn't exist" after IF EXISTS is expected.
    log = logging.getLogger("asyncmy")
    level = log.level
    try:
        log.setLevel(logging.ERROR)
        async with conn.cursor() as cur:
            for sql in statements:
                await cur.execute(sql)
            await cur.execute("SELECT VERSION()")
            version = str((await cur.fetchone())[0])
            await cur.execute("SHOW DATABASES")
            names = [str(r[0]) for r in await cur.fetchall()]
    finally:
        log.setLevel(level)
        conn.close()
    return version, names


async def _prepare_mysql(t: Target) -> None:
    admin = ADMINS[t.name]
    t.server_version, names = await mysql_admin(admin)
    existing = [n for n in names if n.startswith(BENCH_PREFIX)]
    drops = [f"DROP DATABASE IF EXISTS `{n}`" for n in [*stale_databases(existing), BENCH_DB]]
    await mysql_admin(admin, *drops, f"CREATE DATABASE `{BENCH_DB}` CHARACTER SET utf8mb4")
    p = _params(admin, 3306)
    t.params = {**p, "database": BENCH_DB}
    auth = p["user"] + (f":{p['password']}" if p["password"] else "")
    t.url = f"mysql://{auth}@{p['host']}:{p['port']}/{BENCH_DB}"


async def drop_target(t: Target) -> None:
    """Drop the run's bench database (best effort; SQLite's file goes with its directory)."""
    with contextlib.suppress(Exception):
        if t.reachable and t.family == "postgresql":
            await _pg_admin(ADMINS[t.name], f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        elif t.reachable and t.family == "mysql":
            await mysql_admin(ADMINS[t.name], f"DROP DATABASE IF EXISTS `{BENCH_DB}`")


def sqlite_target(path: Path, synchronous: str = "full") -> Target:
    """A SQLite target on ``path`` with ``PRAGMA synchronous`` set for ours and raw alike."""
    url = f"sqlite:///{path}" + ("" if synchronous == "full" else f"?synchronous={synchronous}")
    return Target(
        "sqlite",
        url=url,
        path=str(path),
        server_version=sqlite3.sqlite_version,
        synchronous=synchronous,
    )


async def prepare_target(name: str, workdir: Path, *, synchronous: str = "full") -> Target:
    """Create an empty bench database for ``name``; record why if that fails."""
    t = Target(name)
    try:
        if name == "sqlite":  # a fresh directory: no old file
            return sqlite_target(workdir / "bench.db", synchronous)
        if t.family == "postgresql":
            await asyncio.wait_for(_prepare_postgres(t), _TIMEOUT * 2)
        elif t.family == "mysql":
            await asyncio.wait_for(_prepare_mysql(t), _TIMEOUT * 2)
        else:
            raise ValueError(f"unknown database {name!r}")
    except Exception as exc:  # any failure means: report it unreachable
        t.error = f"{type(exc).__name__}: {exc}".strip()
    return t


async def connect_raw(t: Target, driver: str) -> Any:
    """A raw driver connection configured like ours (time zone, autocommit, pragmas)."""
    if driver == "asyncpg":
        import asyncpg

        return await asyncpg.connect(
            **t.params, timeout=_TIMEOUT, server_settings={"timezone": "UTC"}
        )
    if driver == "asyncmy":
        import asyncmy
        from asyncmy.constants.CLIENT import FOUND_ROWS, MULTI_STATEMENTS

        return await asyncmy.connect(
            **t.params,
            autocommit=True,
            charset="utf8mb4",
            client_flag=FOUND_ROWS | MULTI_STATEMENTS,  # as ours: scripts in one round trip
            connect_timeout=_TIMEOUT,
            init_command="SET time_zone = '+00:00'",
        )
    assert t.path is not None
    pragmas = (
        "PRAGMA journal_mode = WAL",
        f"PRAGMA synchronous = {t.synchronous.upper()}",
        "PRAGMA busy_timeout = 5000",
    )
    if driver == "aiosqlite":
        import aiosqlite

        aconn = await aiosqlite.connect(t.path, isolation_level=None)
        for pragma in pragmas:
            await aconn.execute(pragma)
        return aconn
    conn = sqlite3.connect(t.path, isolation_level=None, check_same_thread=False)
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


_REPLAYERS: dict[str, Any] = {
    "asyncpg": AsyncpgReplayer,
    "asyncmy": AsyncmyReplayer,
    "aiosqlite": AiosqliteReplayer,
    "sqlite3": SQLite3Replayer,
}


async def open_replayer(t: Target, driver: str) -> Replayer:
    """A replayer over a new raw ``driver`` connection to ``t``."""
    replayer: Replayer = _REPLAYERS[driver](await connect_raw(t, driver))
    return replayer


async def open_replayers(t: Target) -> list[Replayer]:
    """One replayer per raw driver of ``t``."""
    return [await open_replayer(t, d) for d in t.raw_drivers]
