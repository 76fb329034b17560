"""Fixtures of the API tests: a Kaizen on each test database, an HTTP client on the app,
and headless Chromium for the end-to-end tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from api_support import token_store
from cdp import Browser, browser

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


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture
def chromium_path() -> str:
    """The Chromium executable; missing fails the test under ``CI=true``, else skips it."""
    found = shutil.which(CHROMIUM)
    if found is None:
        message = f"headless Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def chrome(chromium_path: str, tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium on a fresh profile, to open tabs in."""
    with browser(chromium_path, tmp_path / "profile", tmp_path / "chromium.log") as running:
        yield running
