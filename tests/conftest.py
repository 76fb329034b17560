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

#: Tests that kill or freeze servers and check that calls end in time: marked ``serial``
#: (``./run test`` runs them alone, after the rest has run on two workers).
SERIAL = ("faults", "clusters/test_failover.py")
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`SERIAL`."""
    for item in items:
        where = item.path.resolve().relative_to(HERE).as_posix()
        if any(where == s or where.startswith(f"{s}/") for s in SERIAL):
            item.add_marker(pytest.mark.serial)


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
