"""Fixtures of the API tests: a Kaizen on each test database and an HTTP client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import token_store

from kaizen.api import create_app
from kaizen.service import Kaizen


@pytest.fixture
async def kaizen(db_url: str) -> AsyncIterator[Kaizen]:
    """A Kaizen on an empty test database, once per dialect."""
    async with Kaizen.open(db_url) as opened:
        yield opened


@pytest.fixture
async def client(kaizen: Kaizen) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling the app in-process (same event loop as ``kaizen``)."""
    app = create_app(kaizen, tokens=token_store(), base_url="https://kaizen.example.com/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
