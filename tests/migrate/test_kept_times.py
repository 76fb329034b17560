"""An imported (or backdated) request or session keeps its own times, on every store."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dataflow import DataFlow
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    InMemoryApprovalStore,
)
from kaizen.integrations.nexus import CrossChannelSession, SessionStorage


def _request(id: str, created_at: Any) -> ExternalAgentApprovalRequest:
    return ExternalAgentApprovalRequest(
        id, "agent-1", "user-1", ["lead"], ApprovalStatus.PENDING, None, {}, created_at
    )


@pytest.fixture(params=["dataflow", "memory"])
def store(request: pytest.FixtureRequest, db: DataFlow) -> Any:
    return (
        ExternalAgentApprovalStorage(db) if request.param == "dataflow" else InMemoryApprovalStore()
    )


async def test_save_keeps_created_at(store: Any) -> None:
    old = utcnow().replace(microsecond=0) - timedelta(hours=2)
    await store.save(_request("old", old))
    before = utcnow()
    fresh = _request("fresh", None)  # no time given: now
    await store.save(fresh)
    assert before <= fresh.created_at <= utcnow()
    loaded = await store.load("old")
    assert loaded is not None and loaded.created_at == old
    expired = await store.get_expired_pending_requests(timeout_seconds=3600)
    assert [r.id for r in expired] == ["old"]
    assert [r.id for r in await store.list_by_status(ApprovalStatus.PENDING)] == ["fresh", "old"]
    assert (await store.verify_audit()).ok


async def test_session_save_keeps_its_times(db: DataFlow) -> None:
    storage = SessionStorage(db)
    past = utcnow().replace(microsecond=0) - timedelta(days=2)
    session = CrossChannelSession(
        user_id="u1",
        created_at=past,
        last_accessed=past + timedelta(hours=1),
        expires_at=past + timedelta(hours=3),
    )
    await storage.save(session)
    loaded = await storage.load(session.session_id, include_expired=True)
    assert loaded is not None
    assert (loaded.created_at, loaded.last_accessed, loaded.expires_at) == (
        past,
        past + timedelta(hours=1),
        past + timedelta(hours=3),
    )
    assert await storage.load(session.session_id) is None  # expired as its times say
    assert await storage.cleanup_expired() == 1
