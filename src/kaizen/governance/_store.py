"""The store interface the manager decides through (database storage or in-memory).

A store persists and decides nothing: the manager computes each change with the
policy (:mod:`kaizen.governance.policy`) from the request it loaded, and the
store applies it only if the request is still at the audit sequence number it
was loaded at (compare-and-set). Of concurrent changes to one request exactly
one applies; the others re-read and are judged again.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from kaizen.governance._rows import Change
from kaizen.governance.models import (
    ApprovalStatus,
    AuditEvent,
    AuditReport,
    Delegation,
    ExternalAgentApprovalRequest,
)

__all__ = ["ApprovalStore", "Change", "SettingsStore"]


class SettingsStore(Protocol):
    """Stored policies and delegations, each change audited (see ``_settings``)."""

    async def get_policy(self, agent: str) -> dict[str, Any] | None: ...
    async def policies(self) -> dict[str, dict[str, Any]]: ...
    async def save_policy(self, agent: str, policy: dict[str, Any], actor: str) -> None: ...
    async def delete_policy(self, agent: str, actor: str) -> bool: ...
    async def delegations(
        self, *, approver: str | None = None, delegate: str | None = None
    ) -> list[Delegation]: ...
    async def save_delegation(self, delegation: Delegation) -> None: ...
    async def delete_delegation(self, approver: str, delegate: str, actor: str) -> bool: ...
    async def history(self, kind: str, key: str) -> list[AuditEvent]: ...
    async def verify(self, report: AuditReport) -> None: ...


class ApprovalStore(Protocol):
    """What the manager needs from a store (storage backend or in-memory).

    ``load`` returns the request with its votes and the seq and hash of its
    latest audit event (``load_for_vote`` also the stored delegations to the
    voter: what a vote is judged on, read together); ``append`` applies a
    :class:`Change` computed from it.
    """

    @property
    def settings(self) -> SettingsStore: ...

    async def save(self, request: ExternalAgentApprovalRequest) -> str: ...
    async def load(self, request_id: str) -> ExternalAgentApprovalRequest | None: ...
    async def load_for_vote(
        self, request_id: str, voter: str
    ) -> tuple[ExternalAgentApprovalRequest | None, list[Delegation]]: ...
    async def append(self, change: Change) -> bool: ...
    async def append_many(self, changes: Sequence[Change]) -> list[bool]: ...
    async def overdue(
        self, now: datetime, limit: int = 200
    ) -> builtins.list[ExternalAgentApprovalRequest]: ...
    async def list_by_approver(
        self, approver_id: str, status: ApprovalStatus | None = None, limit: int = 100
    ) -> builtins.list[ExternalAgentApprovalRequest]: ...
    async def events(self, request_id: str) -> builtins.list[AuditEvent]: ...
    async def verify_audit(self, request_id: str | None = None) -> AuditReport: ...
    def watch(
        self, request_id: str
    ) -> AbstractAsyncContextManager[Callable[[float], Awaitable[None]]]: ...
    async def list(
        self,
        *,
        status: ApprovalStatus | None = None,
        approver: str | Sequence[str] | None = None,
        agent: str | None = None,
        requested_by: str | None = None,
        involving: str | Sequence[str] | None = None,
        decided_by: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[ExternalAgentApprovalRequest]: ...
