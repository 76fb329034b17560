"""Ours: ``NexusSessionManager`` over ``SessionStorage(DataFlow(url))``, public API only."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any

from bench.peers.harness import System

__all__ = ["Ours"]


class Ours(System):
    key = "ours"
    label = "ours (kaizen.integrations.nexus)"
    api = (
        "write `manager.update_session_state_async(sid, {key: value}, channel='api')`; "
        "read `manager.load_session_async(sid)`"
    )
    semantics = (
        "atomic shallow merge in the database (one conditional UPDATE); "
        "concurrent writers of different keys all keep theirs"
    )

    async def open(self) -> None:
        from dataflow import DataFlow
        from kaizen.governance import ExternalAgentApprovalStorage
        from kaizen.integrations.nexus import NexusSessionManager, SessionStorage

        self.dataflow = DataFlow(self.db.url(self.db.name, "ours.db"))
        self.manager = NexusSessionManager(storage_backend=SessionStorage(self.dataflow))
        self.approvals = ExternalAgentApprovalStorage(self.dataflow)
        self.approval_ids: list[str] = []

    async def close(self) -> None:
        await self.dataflow.close()

    async def create(self, sid: str) -> None:
        await self.manager.create_session_async(session_id=sid, user_id="bench-user")

    async def write(self, sid: str, key: str, value: str) -> None:
        if not await self.manager.update_session_state_async(sid, {key: value}, channel="api"):
            raise RuntimeError(f"session {sid} is gone")

    async def read(self, sid: str) -> Any:
        return await self.manager.load_session_async(sid)

    async def visible(self, sid: str, keys: list[str]) -> int:
        session = await self.manager.load_session_async(sid)
        return 0 if session is None else len(set(keys) & set(session.state))

    def extras(self) -> dict[str, Callable[[int], Awaitable[Any]]]:
        return {"approvals.save": self._approval_save, "approvals.load": self._approval_load}

    async def _approval_save(self, i: int) -> None:
        from kaizen.governance import ApprovalStatus, ExternalAgentApprovalRequest

        now = datetime.now(UTC)
        request = ExternalAgentApprovalRequest(
            id=f"peers-{uuid.uuid4().hex}",
            external_agent_id="agent-peers",
            requested_by="user-peers",
            approvers=["lead-peers"],
            status=ApprovalStatus.PENDING,
            approval_reason="refund",
            request_metadata={"cost": 15.0, "call": i},
            created_at=now,
            deadline_at=now + timedelta(hours=1),
        )
        self.approval_ids.append(await self.approvals.save(request))

    async def _approval_load(self, i: int) -> None:
        ids = self.approval_ids
        if await self.approvals.load(ids[i % len(ids)]) is None:
            raise RuntimeError("approval request missing")

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {"kaizen-dataflow": metadata.version("kaizen-dataflow")}
