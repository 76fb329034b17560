"""Shared fixtures: one ``db`` fixture over SQLite, PostgreSQL and MySQL/MariaDB.

Every test that takes ``db`` (or ``db_url``) runs once per database, on freshly
emptied tables. With ``CI=true`` an unreachable PostgreSQL or MySQL fails the
test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dataflow import DataFlow

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
DATABASES = ("sqlite", "postgresql", "mysql")
_reachable: dict[str, str | None] = {}


async def _reset_postgres() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def _reset_mysql() -> None:
    import asyncmy

    conn = await asyncmy.connect(host="127.0.0.1", port=3306, user="root", password="", database="test", connect_timeout=5)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'test'")
            tables = [r[0] for r in await cur.fetchall()]
            await cur.execute("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                await cur.execute(f"DROP TABLE IF EXISTS `{table}`")
            await cur.execute("SET FOREIGN_KEY_CHECKS = 1")
    finally:
        conn.close()


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
