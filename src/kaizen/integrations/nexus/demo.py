"""The session flow of ``kaizen demo``, as a plain async function that returns data."""

from __future__ import annotations

import copy
from typing import Any

from dataflow import DataFlow
from kaizen.integrations.nexus.models import CrossChannelSession
from kaizen.integrations.nexus.session_manager import NexusSessionManager
from kaizen.integrations.nexus.storage import SessionStorage

__all__ = ["session_flow"]


def _describe(session: CrossChannelSession) -> dict[str, Any]:
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "state": copy.deepcopy(session.state),
        "channels": {c: t.isoformat() for c, t in sorted(session.channel_activity.items())},
        "last_accessed": session.last_accessed.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "ttl_seconds": int(session.ttl.total_seconds()),
    }


async def session_flow(url: str, user_id: str = "demo-user") -> dict[str, Any]:
    """Create a session, update it from the API and CLI channels, then reload it.

    The reload uses a new DataFlow handle and manager, as a restarted app would,
    so ``url`` must name a database that outlives a connection (not in-memory SQLite).

    Args:
        url: Database URL.
        user_id: The demo session's user.

    Returns:
        ``created``, ``after_api``, ``after_cli`` and ``reloaded`` session
        descriptions, and ``survived`` (whether the reload saw both updates).
    """
    async with DataFlow(url) as db:
        manager = NexusSessionManager(storage_backend=SessionStorage(db))
        session = await manager.create_session_async(user_id=user_id, ttl_hours=2)
        sid = session.session_id
        steps = {"created": _describe(session)}
        for step, channel, updates in (
            ("after_api", "api", {"question": "status?"}),
            ("after_cli", "cli", {"answer": "all green"}),
        ):
            await manager.update_session_state_async(sid, updates, channel=channel)
            steps[step] = _describe(await _load(manager, sid))
    async with DataFlow(url) as reopened:
        restarted = NexusSessionManager(storage_backend=SessionStorage(reopened))
        steps["reloaded"] = _describe(await _load(restarted, sid))
    again, cli = steps["reloaded"], steps["after_cli"]
    survived = again["state"] == cli["state"] and set(again["channels"]) == {"api", "cli"}
    return {**steps, "survived": survived}


async def _load(manager: NexusSessionManager, session_id: str) -> CrossChannelSession:
    session = await manager.load_session_async(session_id)
    if session is None:  # pragma: no cover - only if another process deletes it meanwhile
        raise RuntimeError(f"demo session {session_id} vanished")
    return session
