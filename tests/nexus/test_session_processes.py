"""Sessions shared by real OS processes, on every database.

Each agent is a separate Python process with its own DataFlow and manager
(see ``session_agent.py``): restart durability, concurrent writers, a writer
and a reader, and two processes in different time zones.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from nexus_support import StartAgents

from dataflow import DataFlow
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage


async def test_a_new_process_loads_the_session_after_restart(
    db_url: str, start_agents: StartAgents
) -> None:
    async with DataFlow(db_url) as db:
        manager = NexusSessionManager(storage_backend=SessionStorage(db))
        session = await manager.create_session_async(user_id="u", ttl_hours=2)
        sid = session.session_id
        assert await manager.update_session_state_async(sid, {"q": "hi", "n": [1, 2]}, "api")
        assert await manager.update_session_state_async(sid, {"a": {"ok": True}}, "cli")
        assert await manager.bind_memory_pool_async(sid, "pool-1")
        expected = await manager.load_session_async(sid)
    assert expected is not None
    [agent] = await start_agents(1)
    loaded = await agent.call("load", session_id=sid)
    assert loaded["state"] == {"q": "hi", "n": [1, 2], "a": {"ok": True}}
    assert loaded["memory_pool_id"] == "pool-1"
    assert loaded["ttl_seconds"] == 7200
    assert loaded["channel_activity"] == {
        ch: t.isoformat() for ch, t in expected.channel_activity.items()
    }
    assert set(loaded["channel_activity"]) == {"api", "cli"}
    for field in ("created_at", "last_accessed", "expires_at"):
        assert loaded[field] == getattr(expected, field).isoformat()
        assert loaded[field].endswith("+00:00")


async def test_four_processes_update_distinct_keys_without_losing_any(
    storage: SessionStorage, start_agents: StartAgents
) -> None:
    manager = NexusSessionManager(storage_backend=storage)
    session = await manager.create_session_async(user_id="u")
    agents = await start_agents(4)
    for n, agent in enumerate(agents):
        await agent.send(
            "burst", session_id=session.session_id, prefix=f"p{n}", n=250, channel=f"ch{n}"
        )
    assert await asyncio.gather(*(a.result() for a in agents)) == [250] * 4
    loaded = await manager.load_session_async(session.session_id)
    assert loaded is not None
    assert loaded.state == {f"p{n}-{i}": i for n in range(4) for i in range(250)}
    assert set(loaded.channel_activity) == {"ch0", "ch1", "ch2", "ch3"}


async def test_a_reader_process_never_sees_a_stale_load(
    storage: SessionStorage, start_agents: StartAgents
) -> None:
    manager = NexusSessionManager(storage_backend=storage)
    sid = (await manager.create_session_async(user_id="u")).session_id
    writer, reader = await start_agents(2)
    assert (await reader.call("load", session_id=sid))["state"] == {}  # now cached there
    for i in range(1, 31):
        assert await writer.call("update", session_id=sid, updates={"counter": i}, channel="w")
        seen = await reader.call("load", session_id=sid)
        assert seen["state"]["counter"] >= i
        assert seen["state"]["counter"] == i
    assert await writer.call("cleanup") == 0


async def test_two_time_zones_agree_on_what_is_expired(
    storage: SessionStorage, start_agents: StartAgents
) -> None:
    la, tokyo = await start_agents(tzs=["America/Los_Angeles", "Asia/Tokyo"])
    assert (await la.call("ping"))["gmtoff"] < 0  # the zones really are in effect
    assert (await tokyo.call("ping"))["gmtoff"] == 9 * 3600
    # Offsets (minutes from each writer's now) that naive local times would misjudge.
    offsets = [-13 * 60, -9 * 60, -8 * 60, -30, 30, 7 * 60, 9 * 60, 13 * 60]
    seeded = await la.call("seed", user_id="u", offsets_minutes=offsets)
    seeded |= await tokyo.call("seed", user_id="u", offsets_minutes=offsets)
    live = sorted(sid for sid, offset in seeded.items() if offset > 0)
    views = [await agent.call("view", user_id="u") for agent in (la, tokyo)]
    for view in views:
        assert view["offsets"] == ["0:00:00"]  # every stored time reads back as UTC
        for path in ("loaded", "not_expired", "list_active", "list_by_user"):
            assert view[path] == live, path
        assert view["count_active"] == len(live)
    assert await tokyo.call("cleanup") == len(seeded) - len(live)
    assert await la.call("cleanup") == 0
    remaining = await storage.list_by_user("u", include_expired=True, limit=100)
    assert sorted(s.session_id for s in remaining) == live
    assert all(s.expires_at - s.last_accessed > timedelta(0) for s in remaining)


async def test_agents_report_failures(start_agents: StartAgents) -> None:
    [agent] = await start_agents(1)
    with pytest.raises(AssertionError, match="SessionValidationError"):
        await agent.call("update", session_id="s", updates={"x": float("inf")}, channel="c")
    assert await agent.call("load", session_id="s") is None
