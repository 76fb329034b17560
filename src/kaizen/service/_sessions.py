"""Cross-channel sessions as plain data: list, read, create, merge, clean up."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from kaizen.access import Viewer, involving, may_see_session
from kaizen.integrations.nexus import CrossChannelSession
from kaizen.integrations.nexus._checks import check_channel, check_json_object
from kaizen.integrations.nexus.errors import SessionNotFoundError, SessionValidationError
from kaizen.integrations.nexus.session_manager import DEFAULT_TTL_HOURS
from kaizen.service._approvals import page_bounds

if TYPE_CHECKING:
    from kaizen.service import Kaizen

__all__ = [
    "cleanup_sessions",
    "create_session",
    "get_session",
    "list_sessions",
    "session_dict",
    "update_session_state",
]


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
    page_bounds(limit, offset)
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


async def create_session(
    k: Kaizen,
    user_id: str,
    *,
    ttl_hours: float | None = None,
    channel: str | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Create and store a session of ``user_id``, in one write; return it as stored.

    Args:
        k: The services.
        user_id: The session's user.
        ttl_hours: How long it lives after each use (default: the manager's, 1 hour).
        channel: The channel creating it (``api``, ``cli``, ``mcp``...), recorded in
            its ``channel_activity`` as an update from that channel would be.
        state: The initial state (a JSON object), merged as an update is.

    Raises:
        SessionValidationError: Bad user id, TTL, channel or state; nothing is written.
    """
    session = await k.sessions.create_session_async(
        user_id=user_id,
        ttl_hours=DEFAULT_TTL_HOURS if ttl_hours is None else ttl_hours,
        channel=channel,
        state=state,
    )
    return session_dict(session)


async def update_session_state(
    k: Kaizen,
    session_id: str,
    state: dict[str, Any],
    *,
    channel: str,
    viewer: Viewer | None = None,
) -> dict[str, Any]:
    """Merge ``state``'s keys into a live session's state atomically (other keys are
    kept; concurrent merges of other keys from any channel all survive), recorded as
    ``channel``'s activity; return the session as stored after the merge.

    Args:
        k: The services.
        session_id: The session.
        state: The top-level keys to set (a JSON object; ``dict.update``).
        channel: The channel making the update.
        viewer: Who updates (None: the operator); a non-admin may update only
            their own sessions, and nothing is written for anyone else.

    Raises:
        SessionValidationError: ``state`` is not a JSON object, or a bad id or
            channel; nothing is written.
        SessionNotFoundError: No live session has this id, or ``viewer`` may not see it.
    """
    check_json_object(state, "state")
    if check_channel(channel) is None:
        raise SessionValidationError("channel is required: the channel making the update")
    manager = k.sessions
    visible = await manager.load_session_async(session_id)
    if visible is None or not may_see_session(viewer, visible):
        raise SessionNotFoundError(f"no session {session_id!r}")
    if not await manager.update_session_state_async(session_id, state, channel):
        raise SessionNotFoundError(f"no session {session_id!r}")  # it expired meanwhile
    merged = await manager.load_session_async(session_id)
    if merged is None:  # deleted or expired between the merge and this read
        raise SessionNotFoundError(f"no session {session_id!r}")
    return session_dict(merged)


async def cleanup_sessions(k: Kaizen) -> int:
    """Delete every expired session; return the true number deleted."""
    return await k.sessions.cleanup_expired_sessions_async()
