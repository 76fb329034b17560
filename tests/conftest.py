"""Shared fixtures: one ``db`` fixture over SQLite, PostgreSQL and MySQL/MariaDB.

Every test that takes ``db`` (or ``db_url``) runs once per database, on freshly
emptied tables. With ``CI=true`` an unreachable PostgreSQL or MySQL fails the
test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dataflow import DataFlow

PG_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
# Each pytest run gets its own databases, so concurrent runs never clobber each other.
DB_NAME = f"dataflow_test_{os.getpid()}"
PG_URL = f"postgresql://postgres@{PG_HOST}:5432/{DB_NAME}"
MYSQL_URL = f"mysql://root@{MYSQL_HOST}:3306/{DB_NAME}"
DATABASES = ("sqlite", "postgresql", "mysql")
_reachable: dict[str, str | None] = {}
_created: set[str] = set()


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(
        host=PG_HOST, port=5432, user="postgres", database="test", timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _reset_postgres() -> None:
    import asyncpg

    if "postgresql" not in _created:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}"')
        await _pg_admin(f'CREATE DATABASE "{DB_NAME}"')
        _created.add("postgresql")
    conn = await asyncpg.connect(
        host=PG_HOST, port=5432, user="postgres", database=DB_NAME, timeout=5
    )
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def _mysql(sql: str) -> None:
    import asyncmy

    conn = await asyncmy.connect(
        host=MYSQL_HOST, port=3306, user="root", password="", connect_timeout=5
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
    finally:
        conn.close()


async def _reset_mysql() -> None:
    # Dropping and re-creating the database is the quickest way to empty it.
    await _mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")
    await _mysql(f"CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4")
    _created.add("mysql")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the databases this run created."""
    for name, drop in (
        ("postgresql", lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')),
        ("mysql", lambda: _mysql(f"DROP DATABASE IF EXISTS `{DB_NAME}`")),
    ):
        if name in _created:
            with contextlib.suppress(Exception):  # best effort clean-up
                asyncio.run(drop())


_RESETS = {"postgresql": _reset_postgres, "mysql": _reset_mysql}


def reset_database(name: str) -> None:
    """Empty the test database ``name`` (drop every table), or fail/skip if unreachable."""
    if name == "sqlite":
        return
    error = _reachable.get(name, "unchecked")
    if error == "unchecked":
        try:
            asyncio.run(_RESETS[name]())
            error = None
        except Exception as exc:  # any failure means unreachable
            error = f"{type(exc).__name__}: {exc}"
        _reachable[name] = error
    else:
        asyncio.run(_RESETS[name]())
    if error is not None:
        message = f"{name} test database unreachable ({error})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty test database, once per dialect."""
    name = request.param
    reset_database(name)
    if name == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    elif name == "postgresql":
        yield PG_URL
    else:
        yield MYSQL_URL


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[DataFlow]:
    """A DataFlow on an empty test database, once per dialect."""
    flow = DataFlow(db_url)
    try:
        yield flow
    finally:
        await flow.close()
