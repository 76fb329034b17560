"""Cross-channel sessions: the storage's operations and the atomic state merge.

Generated sessions are all live (expiring a day after their last access):
``HOT_ROWS`` belong to ``user-hot``, the rest spread over 20,000 users. Each
``cleanup_expired`` call meets ``CLEANUP_BATCH`` freshly inserted expired
sessions, at every table size.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bench.bulk import grow_table
from bench.runner import Op
from bench.suite import HOT_ROWS, now
from bench.targets import Target
from dataflow import DataFlow
from kaizen.integrations.nexus import CrossChannelSession, NexusSessionManager, SessionStorage

__all__ = ["SessionSuite"]

SESSION_MODEL = "CrossChannelSessionRecord"
#: Expired sessions each cleanup call deletes.
CLEANUP_BATCH = 100
_DAY = 86_400
# JSON text serialized once and shared by many generated rows.
_STATES = [f'{{"step":{n},"lang":"en","cart":[1,2,3]}}' for n in range(10)]


def session_row(k: int, base: datetime) -> dict[str, Any]:
    """Row ``k`` of the generated table (the storage's column layout)."""
    accessed = base - timedelta(seconds=(k * 13) % 3_600)
    created = accessed - timedelta(minutes=30)
    return {
        "id": f"sess-{k:08d}",
        "user_id": "user-hot" if k < HOT_ROWS else f"user-{k % 20_000}",
        "session_created_at": created,
        "last_accessed": accessed,
        "expires_at": accessed + timedelta(seconds=_DAY),
        "ttl_seconds": _DAY,
        "state_json": _STATES[k % 10],
        "channel_activity_json": f'{{"api":"{accessed.isoformat()}"}}',
        "memory_pool_id": None,
        "created_at": created,
        "updated_at": accessed,
    }


def new_session(sid: str) -> CrossChannelSession:
    return CrossChannelSession(
        session_id=sid,
        user_id="user-bench",
        state={"lang": "en", "step": 1},
        ttl=timedelta(seconds=_DAY),
    )


class SessionSuite:
    """Session storage and manager operations on one database."""

    group = "sessions"

    def __init__(self, db: DataFlow, target: Target) -> None:
        self.db = db
        self.target = target
        self.storage = SessionStorage(db)
        self.manager = NexusSessionManager(cleanup_interval=None, storage_backend=self.storage)
        self.rows = 0
        self.base = now()

    async def populate(self, rows: int) -> None:
        await self.grow(rows)

    async def grow(self, rows: int) -> float:
        """Bulk-load generated rows up to ``rows`` in total; return seconds taken."""
        if rows <= self.rows:
            return 0.0
        seconds = await grow_table(
            self.db, self.target, SESSION_MODEL, session_row, self.rows, rows, self.base
        )
        self.rows = rows
        return seconds

    def _expired_rows(self, ids: list[str]) -> list[dict[str, Any]]:
        gone = self.base - timedelta(days=2)
        rows = []
        for sid in ids:
            row = session_row(HOT_ROWS, gone) | {"id": sid, "expires_at": gone}
            row |= {"state_json": {"step": 1}, "channel_activity_json": {}}
            del row["created_at"], row["updated_at"]
            rows.append(row)
        return rows

    def ops(self) -> list[Op]:
        s, m = self.storage, self.manager
        fixture = max(1, self.rows)
        merge_target = "sess-merge"

        async def forget(arg: Any) -> None:
            await self.db.delete(SESSION_MODEL, arg.session_id)

        async def merge_setup(arg: Any) -> None:
            # Once: a stored session this manager has cached (its TTL comes from memory).
            if merge_target not in m.sessions:
                await m.create_session_async(merge_target, "user-bench", ttl_hours=24)

        return [
            Op("save", s.save, make=lambda i: new_session(f"new-{i}"), teardown=forget),
            Op("load", lambda i: s.load(f"sess-{i % fixture:08d}")),
            Op(
                "update_session_state",
                lambda i: m.update_session_state_async(merge_target, {f"k{i % 20}": i}, "api"),
                setup=merge_setup,
                note="manager, session cached: one atomic merge UPDATE",
            ),
            *self.scale_ops(),
        ]

    def scale_ops(self) -> list[Op]:
        s = self.storage

        async def plant(ids: list[str]) -> None:
            await self.db.insert_many(SESSION_MODEL, self._expired_rows(ids))

        async def unplant(ids: list[str]) -> None:
            await self.db.delete_where(SESSION_MODEL, {"id": {"$in": ids}})

        return [
            Op("list_active", lambda i: s.list_active(limit=100), weight=0.25),
            Op("list_by_user", lambda i: s.list_by_user("user-hot", limit=100), weight=0.25),
            Op("count_active", lambda i: s.count_active(), weight=0.25),
            Op(
                "cleanup_expired",
                lambda ids: s.cleanup_expired(limit=1000),
                make=lambda i: [f"exp-{i}-{j}" for j in range(CLEANUP_BATCH)],
                setup=plant,
                teardown=unplant,
                weight=0.125,
                note=f"limit=1000, {CLEANUP_BATCH} expired sessions present",
            ),
        ]
