"""The store interface the manager decides through (database storage or in-memory)."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from dataflow.retry import RetryPolicy
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    ExternalAgentApprovalRequest,
)

__all__ = ["ApprovalStore"]


class ApprovalStore(Protocol):
    """What the manager needs from a store (storage backend or in-memory)."""

    async def save(self, request: ExternalAgentApprovalRequest) -> str: ...
    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None: ...
    async def decide(
        self,
        request_id: str,
        *,
        from_status: ApprovalStatus,
        to_status: ApprovalStatus,
        actor: str,
        reason: str | None = None,
        require_approver: bool = False,
        overdue_at: datetime | None = None,
        before_deadline: datetime | None = None,
        not_requester: bool = False,
    ) -> bool: ...
    async def timeout_overdue(
        self, now: datetime | None = None, *, retry: RetryPolicy | None = None
    ) -> int: ...
    async def list_by_approver(
        self, approver_id: str, status: ApprovalStatus | None = None, limit: int = 100
    ) -> list[ExternalAgentApprovalRequest]: ...
    async def events(self, request_id: str) -> list[AuditEvent]: ...
    async def verify_audit(self, request_id: str | None = None) -> AuditReport: ...
    def watch(
        self, request_id: str
    ) -> AbstractAsyncContextManager[Callable[[float], Awaitable[None]]]: ...
    async def list(
        self,
        *,
        status: ApprovalStatus | None = None,
        approver: str | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | None = None,
        decided_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ExternalAgentApprovalRequest]: ...
