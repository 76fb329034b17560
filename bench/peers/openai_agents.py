"""The OpenAI Agents SDK's sessions: ``SQLiteSession`` and ``SQLAlchemySession``.

A session is a conversation history: a write is ``add_items`` of one input item (what a
turn appends), a read ``get_items()`` (the whole history, as a run reads it). There is no
state to merge keys into: the check counts the items every process appended.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

from bench.peers.harness import System

__all__ = ["OpenAIAgentsSQLAlchemy", "OpenAIAgentsSQLite"]

#: MySQL needs VARCHAR lengths, which the SDK's own tables lack (``create_tables=True``
#: fails there: "VARCHAR requires a length"); its docs leave production tables to
#: migrations, so on MySQL these are made first, column for column the SDK's.
_MYSQL_TABLES = (
    "CREATE TABLE IF NOT EXISTS agent_sessions (session_id VARCHAR(255) PRIMARY KEY, "
    "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
    "updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS agent_messages (id INTEGER AUTO_INCREMENT PRIMARY KEY, "
    "session_id VARCHAR(255) NOT NULL, message_data TEXT NOT NULL, "
    "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, "
    "INDEX idx_agent_messages_session_time (session_id, created_at), "
    "FOREIGN KEY (session_id) REFERENCES agent_sessions (session_id) ON DELETE CASCADE)",
)
_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+asyncmy",
}


def _item(key: str, value: str) -> dict[str, Any]:
    return {"role": "user", "content": f"{key}={value}"}


class _OpenAIAgents(System):
    api = (
        "write `session.add_items([item])` (one input item); read `session.get_items()` "
        "(the whole history); the check appends with `add_items` too"
    )
    semantics = (
        "append-only history: items are inserted, never merged; no keyed state, so "
        "'the state' is whatever the application folds from the items"
    )

    def _session(self, sid: str) -> Any:
        raise NotImplementedError

    async def create(self, sid: str) -> None:
        self._session(sid)  # created by the first add_items

    async def write(self, sid: str, key: str, value: str) -> None:
        await self._session(sid).add_items([_item(key, value)])

    async def read(self, sid: str) -> Any:
        return await self._session(sid).get_items()

    async def visible(self, sid: str, keys: list[str]) -> int:
        contents = {str(i.get("content", "")).partition("=")[0] for i in await self.read(sid)}
        return len(set(keys) & contents)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {d: metadata.version(d) for d in ("openai-agents", "sqlalchemy", "aiosqlite")}


class OpenAIAgentsSQLite(_OpenAIAgents):
    key = "openai-sqlite"
    label = "OpenAI Agents SQLiteSession"
    families = ("sqlite",)

    async def open(self) -> None:
        from agents import SQLiteSession

        self.cls = SQLiteSession
        self.sessions: dict[str, Any] = {}

    def _session(self, sid: str) -> Any:
        if sid not in self.sessions:
            self.sessions[sid] = self.cls(sid, self.db.path("openai.db"))
        return self.sessions[sid]

    async def close(self) -> None:
        for session in self.sessions.values():
            session.close()


class OpenAIAgentsSQLAlchemy(_OpenAIAgents):
    key = "openai-sqlalchemy"
    label = "OpenAI Agents SQLAlchemySession"

    async def open(self) -> None:
        from agents.extensions.memory import SQLAlchemySession
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        self.cls = SQLAlchemySession

        self.engine = create_async_engine(self.db.url(_SCHEMES[self.db.name], "openai-sa.db"))
        self.sessions: dict[str, Any] = {}
        self.create_tables = self.db.name != "mysql"
        if not self.create_tables:
            log = logging.getLogger("asyncmy")  # "already exists" after IF NOT EXISTS is expected
            level = log.level
            log.setLevel(logging.ERROR)
            try:
                async with self.engine.begin() as conn:
                    for ddl in _MYSQL_TABLES:
                        await conn.execute(text(ddl))
            finally:
                log.setLevel(level)

    def _session(self, sid: str) -> Any:
        if sid not in self.sessions:
            self.sessions[sid] = self.cls(sid, engine=self.engine, create_tables=self.create_tables)
        return self.sessions[sid]

    async def close(self) -> None:
        await self.engine.dispose()

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {**super().versions(), "asyncpg": metadata.version("asyncpg")}
