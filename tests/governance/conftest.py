"""Fixtures of the governance tests: storage, managers, requests, worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from gov_helpers import custom

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
)


@pytest.fixture
def storage(db: DataFlow) -> ExternalAgentApprovalStorage:
    """Approval storage on the test database."""
    return ExternalAgentApprovalStorage(db)


@pytest.fixture
def manager(storage: ExternalAgentApprovalStorage) -> ExternalAgentApprovalManager:
    """A manager with storage on each database; agent-1 needs lead-456 or lead-789."""
    mgr = ExternalAgentApprovalManager(storage_backend=storage)
    mgr.add_requirement("agent-1", custom("lead-456", "lead-789"))
    return mgr


@pytest.fixture(params=["storage", "memory"])
def any_manager(request: pytest.FixtureRequest, db: DataFlow) -> ExternalAgentApprovalManager:
    """Like ``manager``, and also the in-memory manager (no storage backend)."""
    if request.param == "storage":
        mgr = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    else:
        mgr = ExternalAgentApprovalManager()
    mgr.add_requirement("agent-1", custom("lead-456", "lead-789"))
    return mgr


MakeRequest = Callable[..., ExternalAgentApprovalRequest]


@pytest.fixture
def make_request() -> MakeRequest:
    """Build a pending request; keyword arguments override fields."""

    def build(**fields: Any) -> ExternalAgentApprovalRequest:
        now = utcnow()
        values: dict[str, Any] = {
            "id": f"req-{uuid.uuid4()}",
            "external_agent_id": "agent-1",
            "requested_by": "user-123",
            "approvers": ["lead-456"],
            "status": ApprovalStatus.PENDING,
            "approval_reason": "needs approval",
            "request_metadata": {"cost": 15.0},
            "created_at": now,
            "deadline_at": now + timedelta(hours=1),
        }
        values.update(fields)
        return ExternalAgentApprovalRequest(**values)

    return build
