"""LangGraph's checkpointers: ``AsyncPostgresSaver`` (psycopg) and ``AsyncSqliteSaver`` (aiosqlite).

A thread's state is its latest checkpoint: one channel per state key. A write is what a graph
step persists: a new checkpoint (the previous one with one channel changed and its version
bumped) ``aput`` with the parent's config; a read is ``aget_tuple`` of the thread's latest.
LangGraph has no MySQL checkpointer.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from bench.peers.harness import System

__all__ = ["LangGraph"]


class LangGraph(System):
    key = "langgraph"
    label = "LangGraph checkpointer"
    api = (
        "write `saver.aput(parent_config, checkpoint, metadata, new_versions)` (a new checkpoint, "
        "one channel changed); read `saver.aget_tuple(thread config)` (the latest); the check "
        "reads the latest with `aget_tuple`, changes one channel and `aput`s it"
    )
    semantics = (
        "whole-state snapshots: each checkpoint carries every channel, so concurrent "
        "read-modify-writes of one thread keep only the last writer's view (no conflict check)"
    )
    families = ("sqlite", "postgresql")

    async def open(self) -> None:
        self._stack: Any = None
        if self.db.name == "sqlite":
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            cm = AsyncSqliteSaver.from_conn_string(self.db.path("langgraph.db"))
        else:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            cm = AsyncPostgresSaver.from_conn_string(self.db.url("postgresql"))
        self._stack = cm
        self.saver = await cm.__aenter__()
        await self.saver.setup()
        self.held: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {}

    async def close(self) -> None:
        await self._stack.__aexit__(None, None, None)

    @staticmethod
    def _thread(sid: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": sid, "checkpoint_ns": ""}}

    async def create(self, sid: str) -> None:
        from langgraph.checkpoint.base import empty_checkpoint

        checkpoint = empty_checkpoint()
        metadata = {"source": "input", "step": -1, "parents": {}}
        config = await self.saver.aput(self._thread(sid), checkpoint, metadata, {})
        self.held[sid] = (config, checkpoint, -1)

    async def write(self, sid: str, key: str, value: str) -> None:
        from langgraph.checkpoint.base import copy_checkpoint, create_checkpoint

        config, previous, step = self.held[sid]
        checkpoint = create_checkpoint(copy_checkpoint(previous), None, step + 1)
        checkpoint["channel_values"] = {**previous["channel_values"], key: value}
        version = self.saver.get_next_version(previous["channel_versions"].get(key), None)
        checkpoint["channel_versions"] = {**previous["channel_versions"], key: version}
        checkpoint["updated_channels"] = [key]
        metadata = {"source": "loop", "step": step + 1, "parents": {}}
        config = await self.saver.aput(config, checkpoint, metadata, {key: version})
        self.held[sid] = (config, checkpoint, step + 1)

    async def read(self, sid: str) -> Any:
        return await self.saver.aget_tuple(self._thread(sid))

    async def update(self, sid: str, key: str, value: str) -> None:
        latest = await self.saver.aget_tuple(self._thread(sid))
        assert latest is not None
        self.held[sid] = (latest.config, latest.checkpoint, latest.metadata.get("step", 0))
        await self.write(sid, key, value)

    async def visible(self, sid: str, keys: list[str]) -> int:
        latest = await self.saver.aget_tuple(self._thread(sid))
        return 0 if latest is None else len(set(keys) & set(latest.checkpoint["channel_values"]))

    @classmethod
    def versions(cls) -> dict[str, str]:
        dists = ("langgraph-checkpoint", "langgraph-checkpoint-postgres")
        return {d: metadata.version(d) for d in (*dists, "langgraph-checkpoint-sqlite", "psycopg")}
