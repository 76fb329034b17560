"""Fixtures of the session tests: storage, managers on a fake clock, agent processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from nexus_support import AgentProcess, Clock, StartAgents

from dataflow import DataFlow
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage


@pytest.fixture
async def start_agents(db_url: str) -> AsyncIterator[StartAgents]:
    """Start agent processes on the test database: ``await start_agents(n)`` or with ``tzs=``."""
    started: list[AgentProcess] = []

    async def start(n: int = 1, tzs: list[str | None] | None = None) -> list[AgentProcess]:
        zones = tzs if tzs is not None else [None] * n
        agents = await asyncio.gather(*(AgentProcess.start(db_url, tz) for tz in zones))
        started.extend(agents)
        return list(agents)

    yield start
    await asyncio.gather(*(a.stop() for a in started))


@pytest.fixture
def storage(db: DataFlow) -> SessionStorage:
    """A SessionStorage on the test database."""
    return SessionStorage(db)


@pytest.fixture
def clock() -> Clock:
    """A fake clock starting at :data:`T0`."""
    return Clock()


@pytest.fixture
def manager(storage: SessionStorage, clock: Clock) -> NexusSessionManager:
    """A storage-backed manager on the fake clock."""
    return NexusSessionManager(storage_backend=storage, clock=clock)


@pytest.fixture
async def other_manager(db_url: str, clock: Clock) -> AsyncIterator[NexusSessionManager]:
    """A second app instance: its own DataFlow handle, storage and manager, same database."""
    flow = DataFlow(db_url)
    try:
        yield NexusSessionManager(storage_backend=SessionStorage(flow), clock=clock)
    finally:
        await flow.close()
