"""Application services: plain async functions over one database, returning data.

The ``kaizen`` CLI and the HTTP API are thin layers over these functions, so
both behave the same. Results are plain dicts and lists (datetimes stay
``datetime``; renderers convert them).

Example:
    >>> async with Kaizen.open("sqlite:///kaizen.db") as k:  # doctest: +SKIP
    ...     pending = await list_approvals(k, status="pending")
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

from dataflow import DataFlow
from dataflow.errors import DatabaseRefusedError
from dataflow.urls import parse_url
from kaizen.access import Viewer
from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage
from kaizen.service._approvals import (
    STATUSES,
    approval_audit,
    approval_dict,
    approve,
    get_approval,
    list_approvals,
    reject,
    request_approval,
    sweep_approvals,
    verify_audit,
)
from kaizen.service._policies import (
    delegate,
    delegation_dict,
    delete_policy,
    get_policy,
    list_delegations,
    list_policies,
    policy_dict,
    revoke_delegation,
    set_policy,
)
from kaizen.service._sessions import (
    cleanup_sessions,
    create_session,
    get_session,
    list_sessions,
    session_dict,
    update_session_state,
)

__all__ = [
    "STATUSES",
    "Kaizen",
    "Viewer",
    "approval_audit",
    "approval_dict",
    "approve",
    "cleanup_sessions",
    "create_session",
    "delegate",
    "delegation_dict",
    "delete_policy",
    "get_policy",
    "list_delegations",
    "list_policies",
    "policy_dict",
    "revoke_delegation",
    "set_policy",
    "get_approval",
    "get_session",
    "health",
    "list_approvals",
    "list_sessions",
    "maintain_once",
    "reject",
    "request_approval",
    "session_dict",
    "update_session_state",
    "sweep_approvals",
    "verify_audit",
]


@dataclasses.dataclass
class Kaizen:
    """One database with the approval and session storages and managers on it."""

    db: DataFlow
    approval_storage: ExternalAgentApprovalStorage
    approvals: ExternalAgentApprovalManager
    session_storage: SessionStorage
    sessions: NexusSessionManager

    @classmethod
    def connect(cls, url: str, *, base_url: str | None = None) -> Kaizen:
        """Build the services on ``url`` (connecting lazily)."""
        db = DataFlow(url)
        approval_storage = ExternalAgentApprovalStorage(db)
        session_storage = SessionStorage(db)
        return cls(
            db=db,
            approval_storage=approval_storage,
            approvals=ExternalAgentApprovalManager(
                storage_backend=approval_storage, base_url=base_url or ""
            ),
            session_storage=session_storage,
            sessions=NexusSessionManager(storage_backend=session_storage),
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, url: str, *, base_url: str | None = None, create: bool = True
    ) -> AsyncIterator[Kaizen]:
        """Open the services on ``url`` for the duration of a block.

        Args:
            url: The database URL.
            base_url: Public URL of the API, for the links sent to approvers.
            create: False for commands that only read or change what exists: a
                SQLite file that is not there is then an error, not a new database.

        Raises:
            DatabaseRefusedError: ``create`` is False and the SQLite file does not exist.
        """
        if not create:
            _must_exist(url)
        kaizen = cls.connect(url, base_url=base_url)
        try:
            yield kaizen
        finally:
            await kaizen.db.close()


def _must_exist(url: str) -> None:
    parsed = parse_url(url)
    path = parsed.database
    if parsed.family == "sqlite" and path not in (None, ":memory:") and not Path(path).exists():
        raise DatabaseRefusedError(
            f"no database at {path}: nothing to read there "
            "(check --db, $KAIZEN_DATABASE_URL or $DATABASE_URL)"
        )


async def health(k: Kaizen) -> dict[str, str]:
    """``{"status": "ok", "database": <dialect>}`` when the database answers.

    Raises:
        ConnectionLostError: It does not.
    """
    await k.db.ping()
    return {"status": "ok", "database": k.db.dialect_name}


async def maintain_once(k: Kaizen) -> dict[str, int]:
    """One maintenance pass: escalate or time out overdue approvals, delete expired
    sessions.

    Safe to run from several instances at once: each row changes once.
    """
    swept = await sweep_approvals(k)
    return {
        "approvals_timed_out": swept["timed_out"],
        "approvals_escalated": swept["escalated"],
        "sessions_deleted": await cleanup_sessions(k),
    }
