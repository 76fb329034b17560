"""Fixtures of the dataflow tests (helpers live in df_support)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from df_support import RawDB


@pytest.fixture
async def raw(db_url: str) -> AsyncIterator[RawDB]:
    """A raw driver connection to the same empty database as ``db``."""
    conn = await RawDB(db_url).open()
    try:
        yield conn
    finally:
        await conn.close()
