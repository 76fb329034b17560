"""The contract suite runs on every target: the single servers and the clusters."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from targets import TARGETS, target_urls


@pytest.fixture(params=list(TARGETS))
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty test database, once per target (clusters included)."""
    yield target_urls(request.param, tmp_path)[0]
