"""Legacy Kaizen tables for the migration tests: the spec's DDL (exact) and the
upstream library's own layout (plural names, every column text, ``""`` for unset),
created and read with statements of their own, outside DataFlow's models."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from dataflow import DataFlow
from kaizen.cli import main
from kaizen.migrate._tables import open_tables

__all__ = [
    "NOW",
    "SPEC_REQUESTS",
    "SPEC_SESSIONS",
    "UPSTREAM_REQUESTS",
    "UPSTREAM_SESSIONS",
    "cli",
    "create",
    "insert",
    "iso",
    "legacy_rows",
    "stamp",
    "table_names",
    "with_db",
]

#: "Now" of the fixtures, to the second (every database keeps it exactly).
NOW = datetime.now(UTC).replace(microsecond=0)

# The spec's DDL, character for character (docs: "Database Schema").
SPEC_REQUESTS = """CREATE TABLE external_agent_approval_request (
    id TEXT PRIMARY KEY,
    external_agent_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    approvers_json TEXT,  -- JSON array
    status TEXT DEFAULT 'pending',
    approval_reason TEXT,
    request_metadata_json TEXT,  -- JSON object
    created_at TIMESTAMP,  -- auto-managed
    updated_at TIMESTAMP,  -- auto-managed
    approved_at TIMESTAMP,
    approved_by TEXT,
    rejection_reason TEXT
);"""
SPEC_SESSIONS = """CREATE TABLE cross_channel_session (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    last_accessed TEXT,  -- ISO datetime
    expires_at TEXT,  -- ISO datetime
    state_json TEXT,  -- JSON object
    channel_activity_json TEXT,  -- JSON object
    memory_pool_id TEXT,
    created_at TIMESTAMP,  -- auto-managed
    updated_at TIMESTAMP  -- auto-managed
);"""
# The upstream library's models as its DataFlow stores them: str fields, text times.
UPSTREAM_REQUESTS = """CREATE TABLE external_agent_approval_requests (
    id TEXT PRIMARY KEY,
    external_agent_id TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    approvers_json TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL DEFAULT 'pending',
    approval_reason TEXT NOT NULL DEFAULT '',
    request_metadata_json TEXT NOT NULL DEFAULT '{}',
    approved_at TEXT,
    approved_by TEXT,
    rejection_reason TEXT,
    created_at TEXT,
    updated_at TEXT
)"""
UPSTREAM_SESSIONS = """CREATE TABLE cross_channel_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL DEFAULT '',
    last_accessed TEXT NOT NULL DEFAULT '',
    expires_at TEXT NOT NULL DEFAULT '',
    state_json TEXT NOT NULL DEFAULT '{}',
    channel_activity_json TEXT NOT NULL DEFAULT '{}',
    memory_pool_id TEXT,
    created_at TEXT,
    updated_at TEXT
)"""


def _for(db: DataFlow, ddl: str) -> str:
    if db.dialect_name != "mysql":
        return ddl
    # MySQL cannot make a TEXT column a key without a length: the nearest it takes.
    return ddl.replace("id TEXT PRIMARY KEY", "id VARCHAR(255) PRIMARY KEY")


async def _run(db: DataFlow, statements: Sequence[tuple[str, list[Any]]]) -> None:
    backend = await db.dialect.open_backend()
    try:

        async def go(conn: Any) -> None:
            for sql, args in statements:
                await conn.execute(sql, args)

        await backend.run(go, atomic=True)
    finally:
        await backend.close()


async def create(db: DataFlow, *ddl: str) -> None:
    """Run these CREATE TABLE statements (adapted only where MySQL needs it)."""
    for one in ddl:  # one by one: MySQL commits each DDL statement anyway
        await _run(db, [(_for(db, one), [])])


def stamp(db: DataFlow, when: datetime | None) -> Any:
    """A value for a ``TIMESTAMP`` column of the spec's DDL (naive UTC, as upstream wrote)."""
    if when is None:
        return None
    naive = when.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(sep=" ") if db.dialect_name == "sqlite" else naive


async def insert(db: DataFlow, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``table`` (values as given: text, JSON text, times)."""
    statements = []
    for row in rows:
        t = sa.table(table, *(sa.column(name) for name in row))
        c = sa.insert(t).values(row).compile(dialect=db.dialect.sa_dialect)
        names = getattr(c, "positiontup", None) or []
        statements.append((str(c), [c.params[n] for n in names]))
    await _run(db, statements)


async def table_names(db: DataFlow, *names: str) -> set[str]:
    """Which of ``names`` are tables of the database."""
    async with open_tables(db) as tables:
        return {n for n in names if await tables.columns(n) is not None}


async def legacy_rows(db: DataFlow, table: str) -> list[dict[str, Any]]:
    """Every row of a legacy table, by id (None ids last)."""
    async with open_tables(db) as tables:
        columns = sorted(await tables.columns(table) or ())
        rows, after = await tables.page(table, columns, None, 10_000)
        assert after is None
        return rows


def with_db(url: str, fn: Any) -> Any:
    """Run ``await fn(db)`` on a DataFlow of its own, closed afterwards."""

    async def go() -> Any:
        async with DataFlow(url) as db:
            return await fn(db)

    return asyncio.run(go())


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run ``kaizen argv`` in-process with ``--json``: its exit code and parsed output."""
    code = main([*argv, "--json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None


def iso(when: datetime, offset_hours: int | None = 0) -> str:
    """``when`` as ISO text: with this UTC offset, or naive UTC (None)."""
    if offset_hours is None:
        return when.astimezone(UTC).replace(tzinfo=None).isoformat()
    return when.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()
