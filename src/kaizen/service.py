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
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime
from pathlib import Path
from typing import Any

from dataflow import DataFlow
from dataflow.errors import NotFoundError, ValidationError
from dataflow.urls import parse_url
from kaizen.access import Viewer, involving, may_see_request, may_see_session, may_see_trail
from kaizen.governance import (
    ApprovalNotFoundError,
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalRequest,
    ExternalAgentApprovalStorage,
    NotAuthorizedError,
)
from kaizen.integrations.nexus import CrossChannelSession, NexusSessionManager, SessionStorage
from kaizen.integrations.nexus.errors import SessionNotFoundError

__all__ = [
    "STATUSES",
    "Kaizen",
    "Viewer",
    "approval_audit",
    "approval_dict",
    "approve",
    "cleanup_sessions",
    "get_approval",
    "get_session",
    "health",
    "list_approvals",
    "list_sessions",
    "maintain_once",
    "reject",
    "session_dict",
    "sweep_approvals",
    "verify_audit",
]

STATUSES = ("pending", "approved", "rejected", "timeout", "all")


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
            NotFoundError: ``create`` is False and the SQLite file does not exist.
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
        raise NotFoundError(f"no database at {path}: nothing to read there (check --db)")


def approval_dict(request: ExternalAgentApprovalRequest) -> dict[str, Any]:
    """A request as a plain dict (the status as its string value)."""
    data = dataclasses.asdict(request)
    data["status"] = request.status.value
    return data


def session_dict(session: CrossChannelSession, now: datetime | None = None) -> dict[str, Any]:
    """A session as a plain dict, with ``ttl_seconds`` and ``expired``."""
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "last_accessed": session.last_accessed,
        "expires_at": session.expires_at,
        "ttl_seconds": int(session.ttl.total_seconds()),
        "expired": session.is_expired(now),
        "memory_pool_id": session.memory_pool_id,
        "state": dict(session.state),
        "channel_activity": dict(session.channel_activity),
    }


def _page_bounds(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValidationError("limit and offset must not be negative")


def _status(value: str | None) -> ApprovalStatus | None:
    if value is None or value == "all":
        return None
    try:
        return ApprovalStatus(value)
    except ValueError:
        raise ValidationError(
            f"unknown status {value!r}; use one of {', '.join(STATUSES)}"
        ) from None


async def health(k: Kaizen) -> dict[str, str]:
    """``{"status": "ok", "database": <dialect>}`` when the database answers.

    Raises:
        ConnectionLostError: It does not.
    """
    await k.db.ping()
    return {"status": "ok", "database": k.db.dialect_name}


async def list_approvals(
    k: Kaizen,
    *,
    viewer: Viewer | None = None,
    status: str | None = None,
    approver: str | None = None,
    agent: str | None = None,
    requested_by: str | None = None,
    decided_by: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """One page of approval requests, newest first, in one query.

    Args:
        k: The services.
        viewer: Who reads (None: the operator, who sees everything); a
            non-admin sees only requests they made or are an approver of.
        status: ``pending``, ``approved``, ``rejected``, ``timeout`` or ``all``
            (None: all).
        approver: Only requests this user may decide.
        agent: Only requests for this external agent.
        requested_by: Only requests this user made.
        decided_by: Only requests this user approved or rejected.
        limit: At most this many.
        offset: Skip this many first.

    Returns:
        ``{"items": [...], "next_offset": int | None}``; ``next_offset`` is
        where the next page starts, None on the last page.
    """
    _page_bounds(limit, offset)
    found = await k.approvals.list_requests(
        status=_status(status),
        approver=approver,
        agent=agent,
        requested_by=requested_by,
        involving=involving(viewer),
        decided_by=decided_by,
        limit=limit + 1,
        offset=offset,
    )
    more = len(found) > limit
    return {
        "items": [approval_dict(r) for r in found[:limit]],
        "next_offset": offset + limit if more else None,
    }


async def _visible(
    k: Kaizen, request_id: str, viewer: Viewer | None
) -> ExternalAgentApprovalRequest:
    request = await k.approvals.get_request(request_id)
    if request is None or not may_see_request(viewer, request):
        raise ApprovalNotFoundError(request_id)
    return request


async def get_approval(k: Kaizen, request_id: str, viewer: Viewer | None = None) -> dict[str, Any]:
    """One request.

    Raises:
        ApprovalNotFoundError: No request has this id, or ``viewer`` may not see it.
    """
    return approval_dict(await _visible(k, request_id, viewer))


async def _decided(
    k: Kaizen, decision: Awaitable[None], request_id: str, viewer: Viewer | None
) -> dict[str, Any]:
    try:
        await decision
    except NotAuthorizedError:
        if viewer is not None:  # a user who may not even see the request learns nothing
            await _visible(k, request_id, viewer)
        raise
    return await get_approval(k, request_id)


async def approve(
    k: Kaizen, request_id: str, approver_id: str, *, viewer: Viewer | None = None
) -> dict[str, Any]:
    """Approve a request as ``approver_id``; return it as stored.

    Args:
        k: The services.
        request_id: The request.
        approver_id: Who approves.
        viewer: The approver as a reader (the HTTP API): a request they may
            not see is reported as not found rather than as not theirs to decide.

    Raises:
        ApprovalNotFoundError: Unknown id (or one ``viewer`` may not see).
        NotAuthorizedError, SelfDecisionError, AlreadyDecidedError: As the manager does.
    """
    decision = k.approvals.approve_request(request_id, approver_id)
    return await _decided(k, decision, request_id, viewer)


async def reject(
    k: Kaizen,
    request_id: str,
    approver_id: str,
    reason: str,
    *,
    viewer: Viewer | None = None,
) -> dict[str, Any]:
    """Reject a request as ``approver_id`` with ``reason``; return it as stored (see
    :func:`approve`)."""
    decision = k.approvals.reject_request(request_id, approver_id, reason)
    return await _decided(k, decision, request_id, viewer)


async def approval_audit(
    k: Kaizen, request_id: str, viewer: Viewer | None = None
) -> list[dict[str, Any]]:
    """The audit events of one request, oldest first (also after the request was deleted).

    Raises:
        ApprovalNotFoundError: Neither the request nor any event of it exists,
            or ``viewer`` may not see them.
    """
    events = await k.approvals.get_audit_trail(request_id)
    request = await k.approvals.get_request(request_id)
    if request is not None:  # who may read it now, not who could when it was made
        visible = may_see_request(viewer, request)
    else:
        visible = bool(events) and may_see_trail(viewer, events)
    if not visible:
        raise ApprovalNotFoundError(request_id)
    return [dataclasses.asdict(e) for e in events]


async def sweep_approvals(k: Kaizen) -> int:
    """Move every overdue pending request to TIMEOUT; return how many this call moved."""
    return await k.approvals.timeout_pending_approvals()


async def verify_audit(k: Kaizen) -> dict[str, Any]:
    """Verify every audit chain; return ``{"ok", "requests", "events", "problems"}``."""
    report = await k.approvals.verify_audit()
    return {
        "ok": report.ok,
        "requests": report.requests,
        "events": report.events,
        "problems": [dataclasses.asdict(p) for p in report.problems],
    }


async def list_sessions(
    k: Kaizen,
    *,
    viewer: Viewer | None = None,
    user: str | None = None,
    include_expired: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Sessions, most recently accessed first (expired ones too with ``include_expired``).

    A non-admin ``viewer`` sees only their own sessions (another ``user``: none).
    """
    _page_bounds(limit, offset)
    own = involving(viewer)
    if own is not None:
        if user not in (None, own):
            return []
        user = own
    store = k.session_storage
    if user is not None:
        found = await store.list_by_user(user, include_expired, limit, offset=offset)
    else:
        found = await store.list_active(limit, offset, include_expired=include_expired)
    return [session_dict(s) for s in found]


async def get_session(k: Kaizen, session_id: str, viewer: Viewer | None = None) -> dict[str, Any]:
    """One session, expired or not (until cleanup deletes it).

    Raises:
        SessionNotFoundError: No session has this id, or ``viewer`` may not see it.
    """
    session = await k.session_storage.load(session_id, include_expired=True)
    if session is None or not may_see_session(viewer, session):
        raise SessionNotFoundError(f"no session {session_id!r}")
    return session_dict(session)


async def cleanup_sessions(k: Kaizen) -> int:
    """Delete every expired session; return the true number deleted."""
    return await k.sessions.cleanup_expired_sessions_async()


async def maintain_once(k: Kaizen) -> dict[str, int]:
    """One maintenance pass: time out overdue approvals, delete expired sessions.

    Safe to run from several instances at once: each row changes once.
    """
    return {
        "approvals_timed_out": await sweep_approvals(k),
        "sessions_deleted": await cleanup_sessions(k),
    }
