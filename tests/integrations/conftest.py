"""Fixtures of the bridge tests: a manager on each database, tools that start afresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bridge_support import make_manager, reset

from dataflow import DataFlow
from kaizen.governance import ExternalAgentApprovalManager


@pytest.fixture(autouse=True)
def _fresh_tools() -> Iterator[None]:
    reset()
    yield
    reset()


@pytest.fixture
def manager(db: DataFlow) -> ExternalAgentApprovalManager:
    """A manager with storage on the test database; AGENT needs lead-456 or lead-789."""
    return make_manager(db)
