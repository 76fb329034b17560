"""Shared fixtures: ``db``/``db_url`` over the single servers of ``targets.TARGETS``.

Every test that takes ``db`` (or ``db_url``) runs once per single server (SQLite,
PostgreSQL, MariaDB), on freshly emptied tables; with ``CI=true`` an unreachable
one fails the test instead of skipping it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dataflow import DataFlow
from targets import DATABASES, drop_created, target_urls


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the databases this run created."""
    drop_created()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty test database, once per single server."""
    yield target_urls(request.param, tmp_path)[0]


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[DataFlow]:
    """A DataFlow on an empty test database, once per dialect."""
    flow = DataFlow(db_url)
    try:
        yield flow
    finally:
        await flow.close()
