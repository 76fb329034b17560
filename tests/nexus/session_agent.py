"""A separate app instance for the multi-process session tests.

Run as ``python session_agent.py DATABASE_URL``. It opens its own DataFlow and
NexusSessionManager, answers ``ready`` on stdout, then executes one JSON
command per stdin line and answers one JSON line each (``{"ok": result}`` or
``{"error": "..."}``). The TZ environment variable is applied with
``time.tzset()`` before anything else.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import timedelta
from typing import Any

time.tzset()

from dataflow import DataFlow  # noqa: E402 - after tzset on purpose
from kaizen.integrations.nexus import (  # noqa: E402
    CrossChannelSession,
    NexusSessionManager,
    SessionStorage,
)


def as_json(session: CrossChannelSession | None) -> dict[str, Any] | None:
    """A session as JSON (times as ISO strings, so the parent sees their offsets)."""
    if session is None:
        return None
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "created_at": session.created_at.isoformat(),
        "last_accessed": session.last_accessed.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "state": session.state,
        "channel_activity": {k: v.isoformat() for k, v in session.channel_activity.items()},
        "memory_pool_id": session.memory_pool_id,
        "ttl_seconds": session.ttl.total_seconds(),
    }


class Agent:
    """Commands of one app instance."""

    def __init__(self, url: str) -> None:
        self.db = DataFlow(url)
        self.storage = SessionStorage(self.db)
        self.manager = NexusSessionManager(storage_backend=self.storage)

    async def ping(self) -> dict[str, Any]:
        return {"gmtoff": time.localtime().tm_gmtoff, "tzname": time.tzname[0]}

    async def load(self, session_id: str) -> dict[str, Any] | None:
        return as_json(await self.manager.load_session_async(session_id))

    async def update(self, session_id: str, updates: dict[str, Any], channel: str) -> bool:
        return await self.manager.update_session_state_async(session_id, updates, channel)

    async def burst(self, session_id: str, prefix: str, n: int, channel: str) -> int:
        done = 0
        for i in range(n):
            key = f"{prefix}-{i}"
            done += await self.manager.update_session_state_async(session_id, {key: i}, channel)
        return done

    async def seed(self, user_id: str, offsets_minutes: list[int]) -> dict[str, int]:
        """Store one session per offset, expiring that many minutes from this process's now."""
        ids = {}
        for offset in offsets_minutes:
            session = CrossChannelSession(user_id=user_id)
            session.expires_at = session.last_accessed + timedelta(minutes=offset)
            await self.storage.save(session)
            ids[session.session_id] = offset
        return ids

    async def view(self, user_id: str) -> dict[str, Any]:
        """What this instance considers live, through every read path."""
        everyone = await self.storage.list_by_user(user_id, include_expired=True, limit=1000)
        loaded = [s.session_id for s in everyone if await self.storage.load(s.session_id)]
        return {
            "loaded": sorted(loaded),
            "not_expired": sorted(s.session_id for s in everyone if not s.is_expired()),
            "list_active": sorted(s.session_id for s in await self.storage.list_active(1000)),
            "list_by_user": sorted(s.session_id for s in await self.storage.list_by_user(user_id)),
            "count_active": await self.storage.count_active(),
            "offsets": sorted({str(s.expires_at.utcoffset()) for s in everyone}),
        }

    async def cleanup(self) -> int:
        return await self.manager.cleanup_expired_sessions_async()


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(url: str) -> None:
    agent = Agent(url)
    await agent.db.initialize()
    loop = asyncio.get_running_loop()
    _reply({"ok": "ready"})
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            op = command.pop("op")
            try:
                result = await getattr(agent, op)(**command)
            except Exception as exc:
                _reply({"error": f"{type(exc).__name__}: {exc}"})
            else:
                _reply({"ok": result})
    finally:
        await agent.db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
