"""Google ADK's ``DatabaseSessionService`` (SQLAlchemy async: aiosqlite, asyncpg, asyncmy)
and, on SQLite, its ``SqliteSessionService`` (aiosqlite, a connection per call).

A write is what a runner does after each step: ``append_event`` of an event whose
``actions.state_delta`` sets one key, on the session object this process holds (the service
checks it is not stale, merges the delta into the stored state and stores the event). A read
is ``get_session``: the session row, its events, the app and user state rows.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from bench.peers.harness import System

__all__ = ["GoogleADK", "GoogleADKSqlite"]

_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
}
_APP, _USER = "bench", "bench-user"


class GoogleADK(System):
    key = "adk"
    label = "Google ADK DatabaseSessionService"
    api = (
        "write `service.append_event(session, Event(actions=EventActions(state_delta={key: "
        "value})))`; read `service.get_session(...)`; the check does `get_session` then "
        "`append_event`, reloading and retrying on `StaleSessionError` as its message says"
    )
    semantics = (
        "read-modify-write of the stored state under a staleness check (the session object "
        "must carry the stored revision, else `StaleSessionError`: reload and retry); "
        "PostgreSQL/MySQL lock the session row (`FOR UPDATE`)"
    )
    stale = ("StaleSessionError",)  # google.adk.errors.StaleSessionError

    async def open(self) -> None:
        from google.adk.events import Event, EventActions
        from google.adk.sessions import DatabaseSessionService

        self.event, self.actions = Event, EventActions

        self.service = DatabaseSessionService(self.db.url(_SCHEMES[self.db.name], "adk.db"))
        self.held: dict[str, Any] = {}

    async def close(self) -> None:
        await self.service.close()

    async def create(self, sid: str) -> None:
        self.held[sid] = await self.service.create_session(
            app_name=_APP, user_id=_USER, session_id=sid
        )

    async def write(self, sid: str, key: str, value: str) -> None:
        actions = self.actions(state_delta={key: value})
        event = self.event(author="user", invocation_id="bench", actions=actions)
        await self.service.append_event(self.held[sid], event)

    async def read(self, sid: str) -> Any:
        return await self.service.get_session(app_name=_APP, user_id=_USER, session_id=sid)

    async def update(self, sid: str, key: str, value: str) -> None:
        self.held[sid] = await self.read(sid)
        await self.write(sid, key, value)

    async def visible(self, sid: str, keys: list[str]) -> int:
        session = await self.read(sid)
        return 0 if session is None else len(set(keys) & set(session.state))

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {d: metadata.version(d) for d in ("google-adk", "sqlalchemy", "asyncpg", "asyncmy")}


class GoogleADKSqlite(GoogleADK):
    key = "adk-sqlite"
    label = "Google ADK SqliteSessionService"
    semantics = (
        "a staleness check on the session's update time (stale: `StaleSessionError`, reload "
        "and retry), then the state delta merged into the stored state by one SQL UPDATE; "
        "a new connection per call"
    )
    families = ("sqlite",)

    async def open(self) -> None:
        from google.adk.events import Event, EventActions
        from google.adk.sessions.sqlite_session_service import SqliteSessionService

        self.event, self.actions = Event, EventActions
        self.service = SqliteSessionService(self.db.path("adk-sqlite.db"))
        self.held = {}
