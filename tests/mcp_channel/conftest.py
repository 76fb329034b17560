"""Fixtures of the MCP tests: a Kaizen on each test database with a stored policy, and
MCP clients connected in-process to a server acting for a given user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from mcp import Client
from mcp_support import AGENT, LEAD, Connect

from kaizen import service
from kaizen.access import Viewer
from kaizen.mcp import create_server


@pytest.fixture
async def kaizen(db_url: str) -> AsyncIterator[service.Kaizen]:
    """A Kaizen on an empty test database with a policy for :data:`AGENT`."""
    async with service.Kaizen.open(db_url) as opened:
        await service.set_policy(opened, AGENT, approvers=[LEAD], timeout_seconds=600)
        yield opened


@pytest.fixture
def connect(kaizen: service.Kaizen) -> Connect:
    """``async with connect(user) as client``: an MCP client of a server acting for ``user``."""

    @contextlib.asynccontextmanager
    async def connected(user: str) -> AsyncIterator[Client]:
        async with Client(create_server(kaizen, user=Viewer(user))) as client:
            yield client

    return connected
