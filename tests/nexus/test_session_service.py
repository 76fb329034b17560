"""The session services the API, the CLI and the MCP server call, on every database:
create and merge as a channel, who may merge, and sessions that go away mid-call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from kaizen import service
from kaizen.access import Viewer
from kaizen.integrations.nexus import (
    NexusSessionManager,
    SessionNotFoundError,
    SessionStorage,
    SessionValidationError,
)
from kaizen.service import Kaizen


@pytest.fixture
async def k(db_url: str) -> AsyncIterator[Kaizen]:
    async with Kaizen.open(db_url) as opened:
        yield opened


async def test_create_with_and_without_a_channel(k: Kaizen) -> None:
    quiet = await service.create_session(k, "u")
    assert quiet["ttl_seconds"] == 3600 and quiet["channel_activity"] == {}
    assert quiet["state"] == {} and quiet["expired"] is False
    seeded = await service.create_session(k, "u", state={"a": 1}, ttl_hours=0.5)
    assert seeded["state"] == {"a": 1} and seeded["channel_activity"] == {}
    assert seeded["ttl_seconds"] == 1800
    mcp = await service.create_session(k, "u", channel="mcp")
    assert mcp["channel_activity"] == {"mcp": mcp["created_at"]}
    assert await service.get_session(k, mcp["session_id"]) == mcp


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": ""},
        {"user_id": "u", "ttl_hours": 0},
        {"user_id": "u", "channel": ""},
        {"user_id": "u", "state": [1]},
        {"user_id": "u", "state": {"x": float("nan")}},
    ],
)
async def test_bad_creates_write_nothing(k: Kaizen, kwargs: dict[str, Any]) -> None:
    with pytest.raises(SessionValidationError):
        await service.create_session(k, **kwargs)
    assert await service.list_sessions(k, include_expired=True) == []


async def test_update_merges_for_the_owner_admins_and_the_operator(k: Kaizen) -> None:
    sid = (await service.create_session(k, "alice", channel="api"))["session_id"]
    for n, viewer in enumerate((Viewer("alice"), Viewer("root", admin=True), None)):
        merged = await service.update_session_state(
            k, sid, {f"k{n}": n}, channel="mcp", viewer=viewer
        )
    assert merged["state"] == {"k0": 0, "k1": 1, "k2": 2}
    assert set(merged["channel_activity"]) == {"api", "mcp"}
    assert merged["last_accessed"] == merged["channel_activity"]["mcp"]
    assert await service.get_session(k, sid) == merged


async def test_update_refuses_bad_input_before_reading_anything(k: Kaizen) -> None:
    sid = (await service.create_session(k, "alice", state={"v": 1}))["session_id"]
    before = await service.get_session(k, sid)
    bad: list[tuple[Any, Any]] = [
        ([1], "api"),
        ({"v": {1}}, "api"),
        ({"v": 2}, ""),
        ({"v": 2}, None),
    ]
    for state, channel in bad:
        with pytest.raises(SessionValidationError):
            await service.update_session_state(k, sid, state, channel=channel)
    with pytest.raises(SessionValidationError, match="session_id"):
        await service.update_session_state(k, " padded", {"v": 2}, channel="api")
    with pytest.raises(SessionNotFoundError):
        await service.update_session_state(k, sid, {"v": 2}, channel="api", viewer=Viewer("bob"))
    with pytest.raises(SessionNotFoundError):
        await service.update_session_state(k, "missing", {"v": 2}, channel="api")
    assert await service.get_session(k, sid) == before


class VanishingStorage(SessionStorage):
    """A real storage on which another instance deletes the session right after a
    read (``after="load"``) or a merge (``after="merge"``) of this one."""

    after = ""

    async def load(
        self, session_id: str, *, now: datetime | None = None, include_expired: bool = False
    ) -> Any:
        found = await super().load(session_id, now=now, include_expired=include_expired)
        if self.after == "load":
            await self.delete(session_id)
        return found

    async def merge_state(
        self,
        session_id: str,
        updates: dict[str, Any],
        channel: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> bool:
        merged = await super().merge_state(session_id, updates, channel, now, expires_at)
        if self.after == "merge":
            await self.delete(session_id)
        return merged


@pytest.mark.parametrize("after", ["load", "merge"])
async def test_a_session_deleted_mid_update_is_not_found(k: Kaizen, after: str) -> None:
    storage = VanishingStorage(k.db)
    k.sessions = NexusSessionManager(storage_backend=storage)
    sid = (await service.create_session(k, "u"))["session_id"]
    k.sessions.sessions.clear()  # as on another instance: nothing cached
    storage.after = after
    with pytest.raises(SessionNotFoundError):
        await service.update_session_state(k, sid, {"v": 1}, channel="api")
    assert await k.session_storage.load(sid, include_expired=True) is None


async def test_ttls_of_created_sessions_are_whole_seconds(k: Kaizen) -> None:
    made = await service.create_session(k, "u", ttl_hours=1.4 / 3600)
    assert made["ttl_seconds"] == 1
    assert made["expires_at"] - made["last_accessed"] == timedelta(seconds=1)
