"""What every system of the peers benchmark shares: its databases, timing and the 4-process check.

A :class:`System` is one persistence layer (ours or a peer) on one database: it creates a
session (thread), writes one key of its state, reads it back whole, and for the lost-update
check does its natural cross-process "update the state" and counts what survived. The
:class:`Database` is the same for all of them in a run (SQLite: one file per system in one
temporary directory; PostgreSQL and MySQL: one database ``dataflow_peers_<pid>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

__all__ = ["Database", "System", "drop_database", "lost_updates", "prepare_database", "timed"]

PREFIX = "dataflow_peers"
DB_NAME = f"{PREFIX}_{os.getpid()}"
ADMINS = {
    "postgresql": os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}
#: The 10 keys of every session's state.
KEYS = tuple(f"k{i}" for i in range(10))


@dataclass
class Database:
    """One database of the run (picklable: the check's processes get it too)."""

    name: str  # sqlite, postgresql, mysql
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    database: str = ""
    directory: str = ""  # SQLite: the run's temporary directory
    server_version: str = ""
    error: str | None = None

    def url(self, scheme: str, file: str = "") -> str:
        """``scheme://user@host:port/db``, or for SQLite ``scheme:///<directory>/<file>``."""
        if self.name == "sqlite":
            return f"{scheme}:///{Path(self.directory) / file}"
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.database}"

    def path(self, file: str) -> str:
        return str(Path(self.directory) / file)


class System:
    """One persistence layer on one database. Subclasses fill in the operations."""

    key: ClassVar[str]
    label: ClassVar[str]
    #: What a timed write and read call, and how the lost-update check updates.
    api: ClassVar[str]
    semantics: ClassVar[str]
    families: ClassVar[tuple[str, ...]] = ("sqlite", "postgresql", "mysql")
    #: Names of the errors its documentation says to answer by reloading and trying again.
    stale: ClassVar[tuple[str, ...]] = ()

    def __init__(self, db: Database) -> None:
        self.db = db

    async def open(self) -> None:
        """Connect, and import all the calls need: the check times what follows its barrier."""

    async def close(self) -> None: ...

    async def create(self, sid: str) -> None:
        """Create an empty session (thread) ``sid``."""

    async def write(self, sid: str, key: str, value: str) -> None:
        """The timed write: set one key (or append one item) in a session this instance holds."""
        raise NotImplementedError

    async def read(self, sid: str) -> Any:
        """The timed read: the session's whole state as stored."""
        raise NotImplementedError

    async def update(self, sid: str, key: str, value: str) -> None:
        """The lost-update check's write, from a process that did not write before."""
        await self.write(sid, key, value)

    async def visible(self, sid: str, keys: list[str]) -> int:
        """How many of ``keys`` the stored session shows now."""
        raise NotImplementedError

    def extras(self) -> dict[str, Callable[[int], Awaitable[Any]]]:
        """Further operations of this system alone, timed beside the shared ones (call i)."""
        return {}

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {}


def load_system(path: str) -> type[System]:
    module, _, name = path.rpartition(".")
    cls: type[System] = getattr(importlib.import_module(module), name)
    return cls


# -- databases ------------------------------------------------------------------------------


def _stale(names: list[str]) -> list[str]:
    """Databases of earlier runs whose process is gone (killed before they dropped them)."""
    from bench.targets import stale_databases  # the bench's own clean-up rule

    return stale_databases(names, PREFIX)


async def _pg(admin: str, *statements: str) -> tuple[str, list[str]]:
    import asyncpg

    conn = await asyncpg.connect(admin, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
        names = [r[0] for r in await conn.fetch("SELECT datname FROM pg_database")]
        version = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    return version, names


async def _mysql(admin: str, *statements: str) -> tuple[str, list[str]]:
    from bench.targets import mysql_admin  # the bench's own admin helper (asyncmy)

    return await mysql_admin(admin, *statements)


async def prepare_database(name: str, directory: Path) -> Database:
    """A fresh, empty database for the run; ``error`` says why not when it is unreachable."""
    if name == "sqlite":
        import sqlite3

        return Database("sqlite", directory=str(directory), server_version=sqlite3.sqlite_version)
    admin = ADMINS[name]
    p = urlsplit(admin)
    db = Database(
        name,
        host=p.hostname or "127.0.0.1",
        port=p.port or (5432 if name == "postgresql" else 3306),
        user=p.username or ("postgres" if name == "postgresql" else "root"),
        password=p.password or "",
        database=DB_NAME,
    )
    try:
        if name == "postgresql":
            _, names = await _pg(admin)
            drops = [f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in _stale(names)]
            db.server_version, _ = await _pg(admin, *drops, f'CREATE DATABASE "{DB_NAME}"')
            db.server_version = "PostgreSQL " + db.server_version
        else:
            _, names = await _mysql(admin)
            drops = [f"DROP DATABASE IF EXISTS `{n}`" for n in _stale(names)]
            create = f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4"
            db.server_version, _ = await _mysql(admin, *drops, create)
    except Exception as exc:
        db.error = f"{type(exc).__name__}: {exc}"
    return db


async def drop_database(db: Database) -> None:
    with contextlib.suppress(Exception):
        if db.error is None and db.name == "postgresql":
            await _pg(ADMINS[db.name], f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        elif db.error is None and db.name == "mysql":
            await _mysql(ADMINS[db.name], f"DROP DATABASE IF EXISTS `{DB_NAME}`")


# -- timing ---------------------------------------------------------------------------------


async def timed(fn: Callable[[int], Awaitable[Any]], start: int, n: int) -> list[float]:
    """Milliseconds of each of ``n`` calls ``fn(start)``, ``fn(start + 1)``, ..."""
    out = []
    for i in range(start, start + n):
        t0 = time.perf_counter()
        await fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, Any]:
    ms = sorted(ms)
    return {
        "calls": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


# -- the 4-process lost-update check ----------------------------------------------------------


def _worker(path: str, db: Database, sid: str, worker: int, k: int, barrier: Any, out: Any) -> None:
    """One process of the check: ``k`` updates of its own keys into the shared session."""
    out.put(asyncio.run(_work(load_system(path), db, sid, worker, k, barrier)))


async def _work(
    cls: type[System], db: Database, sid: str, worker: int, k: int, barrier: Any
) -> dict[str, Any]:
    system = cls(db)
    await system.open()
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    acked: list[str] = []
    failed = 0
    try:
        barrier.wait(60)  # every process connected: start together
        t0 = time.perf_counter()
        for j in range(k):
            key = f"w{worker}_{j}"
            for attempt in range(20):
                try:
                    await system.update(sid, key, f"{worker}-{j}")
                    acked.append(key)
                    break
                except Exception as exc:
                    name = type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1
                    examples.setdefault(name, str(exc)[:300])
                    if attempt == 19:
                        failed += 1
                    else:
                        await asyncio.sleep(random.uniform(0.001, 0.005))
        seconds = time.perf_counter() - t0
    finally:
        await system.close()
    return {
        "acked": acked,
        "errors": errors,
        "examples": examples,
        "failed": failed,
        "seconds": seconds,
    }


async def lost_updates(path: str, db: Database, processes: int = 4, k: int = 25) -> dict[str, Any]:
    """``processes`` processes write ``k`` distinct keys each into one new session at once."""
    cls = load_system(path)
    sid = f"race-{cls.key}-{os.getpid()}-{random.randrange(1 << 30)}"
    system = cls(db)
    await system.open()
    try:
        await system.create(sid)
    finally:
        await system.close()
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(path, db, sid, w, k, barrier, out))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    results = [await asyncio.to_thread(out.get, True, 300) for _ in procs]
    for p in procs:
        p.join(30)
    acked = [key for r in results for key in r["acked"]]
    errors: dict[str, int] = {}
    for r in results:
        for name, n in r["errors"].items():
            errors[name] = errors.get(name, 0) + n
    system = cls(db)
    await system.open()
    try:
        seen = await system.visible(sid, acked)
    finally:
        await system.close()
    return {
        "processes": processes,
        "writes": processes * k,
        "acknowledged": len(acked),
        "lost": len(acked) - seen,
        "failed": sum(r["failed"] for r in results),
        "errors": errors,
        "error_examples": {e: x for r in results for e, x in r["examples"].items()},
        "retried_as_documented": sum(n for e, n in errors.items() if e in cls.stale),
        "write_seconds": round(max(r["seconds"] for r in results), 2),
    }
