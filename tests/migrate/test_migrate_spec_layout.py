"""``kaizen migrate from-kaizen`` on tables made from the spec's own DDL, in our tables'
place: set aside under ``<name>_kaizen_backup``, then copied, on every database."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from migrate_support import (
    NOW,
    SPEC_REQUESTS,
    SPEC_SESSIONS,
    cli,
    create,
    insert,
    legacy_rows,
    stamp,
    table_names,
    with_db,
)

from dataflow import DataFlow, SchemaError
from kaizen import service
from kaizen.governance import ApprovalStatus

REQUESTS = "external_agent_approval_request"
SESSIONS = "cross_channel_session"
BACKUPS = (f"{REQUESTS}_kaizen_backup", f"{SESSIONS}_kaizen_backup")
OURS = (REQUESTS, SESSIONS, "external_agent_approval_audit", "dataflow_schema")
CREATED = NOW - timedelta(hours=2)


def _request(db: DataFlow, id: str, **fields: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "external_agent_id": "copilot-001",
        "requested_by": "user-123",
        "approvers_json": json.dumps(["lead-456", "admin-1"]),
        "status": "pending",
        "approval_reason": "production deploy",
        "request_metadata_json": json.dumps({"cost": 15.0, "environment": "production"}),
        "created_at": stamp(db, CREATED),
        "updated_at": stamp(db, CREATED),
        "approved_at": None,
        "approved_by": None,
        "rejection_reason": None,
    }
    return row | fields


def _session(id: str, **fields: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "user_id": "user-123",
        "last_accessed": (NOW - timedelta(minutes=10)).isoformat(),
        "expires_at": (NOW + timedelta(minutes=50)).isoformat(),
        "state_json": json.dumps({"cart": ["a"], "step": 2}),
        "channel_activity_json": json.dumps({"api": (NOW - timedelta(minutes=10)).isoformat()}),
        "memory_pool_id": None,
    }
    return row | fields


async def _seed(db: DataFlow) -> None:
    await create(db, SPEC_REQUESTS, SPEC_SESSIONS)
    await insert(
        db,
        REQUESTS,
        [
            _request(db, "req-pending"),
            _request(
                db,
                "req-approved",
                status="approved",
                approved_by="lead-456",
                approved_at=stamp(db, CREATED + timedelta(minutes=5)),
            ),
            _request(
                db,
                "req-rejected",
                status="rejected",
                approved_by="admin-1",
                approved_at=stamp(db, CREATED + timedelta(minutes=7)),
                rejection_reason="too expensive",
            ),
            _request(db, "req-bad-json", approvers_json='["lead-456"'),
            _request(db, "req-nobody", approvers_json="[]"),
        ],
    )
    for row in [_session("sess-live"), _session("sess-bad", state_json="{not json")]:
        row["created_at"] = stamp(db, NOW - timedelta(hours=1))
        row["updated_at"] = stamp(db, NOW - timedelta(minutes=10))
        await insert(db, SESSIONS, [row])
    expired = _session(
        "sess-old",
        user_id="user-9",
        last_accessed=(NOW - timedelta(days=2)).isoformat(),
        expires_at=(NOW - timedelta(days=1)).isoformat(),
        memory_pool_id="pool-7",
    )
    await insert(db, SESSIONS, [expired | {"created_at": stamp(db, NOW - timedelta(days=3))}])


async def _snapshot(db: DataFlow) -> tuple[set[str], list[Any]]:
    """The tables there are, and every row of the legacy ones."""
    names = await table_names(db, *BACKUPS, *OURS)
    return names, [await legacy_rows(db, t) for t in (REQUESTS, SESSIONS)]


def _counts(report: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        t["table"]: (t["read"], t["migrated"], t["present"], len(t["skipped"]))
        for t in report["tables"]
    }


def test_spec_tables_are_set_aside_then_copied(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with_db(db_url, _seed)

    async def refused(db: DataFlow) -> None:
        with pytest.raises(SchemaError, match=r"migrate it by hand|required column"):
            async with service.Kaizen.open(db_url) as k:
                await k.approval_storage.count_by_status(ApprovalStatus.PENDING)

    with_db(db_url, refused)  # what the migration is for

    before = with_db(db_url, _snapshot)
    code, dry = cli(capsys, "--db", db_url, "migrate", "from-kaizen", "--dry-run")
    assert code == 7 and dry["dry_run"] is True
    assert dry["renamed"] == [
        {"from": REQUESTS, "to": BACKUPS[0]},
        {"from": SESSIONS, "to": BACKUPS[1]},
    ]
    assert _counts(dry) == {REQUESTS: (5, 3, 0, 2), SESSIONS: (3, 2, 0, 1)}
    assert with_db(db_url, _snapshot) == before  # a dry run writes nothing
    assert not before[0] & {*BACKUPS, *OURS[2:3]}

    code, done = cli(capsys, "--db", db_url, "migrate", "from-kaizen")
    assert code == 7 and done["migrated"] == 5 and done["skipped"] == 3
    assert _counts(done) == {BACKUPS[0]: (5, 3, 0, 2), BACKUPS[1]: (3, 2, 0, 1)}
    skipped = {s["id"]: s["reason"] for t in done["tables"] for s in t["skipped"]}
    assert "approvers_json is not valid JSON" in skipped["req-bad-json"]
    assert "non-empty list of approvers" in skipped["req-nobody"]
    assert "state_json is not valid JSON" in skipped["sess-bad"]
    # The originals are all still there, the unconvertible rows untouched.
    backup = with_db(db_url, lambda db: legacy_rows(db, BACKUPS[0]))
    assert [r["id"] for r in backup] == sorted(
        ["req-pending", "req-approved", "req-rejected", "req-bad-json", "req-nobody"]
    )
    assert next(r for r in backup if r["id"] == "req-bad-json")["approvers_json"] == '["lead-456"'

    code, listed = cli(capsys, "--db", db_url, "approvals", "list")
    assert code == 0
    by_id = {r["id"]: r for r in listed["items"]}
    assert set(by_id) == {"req-pending", "req-approved", "req-rejected"}
    assert by_id["req-approved"]["approved_by"] == "lead-456"
    assert by_id["req-rejected"]["rejection_reason"] == "too expensive"
    assert by_id["req-pending"]["request_metadata"] == {"cost": 15.0, "environment": "production"}
    code, sessions = cli(capsys, "--db", db_url, "sessions", "list", "--all")
    assert code == 0 and {s["session_id"] for s in sessions} == {"sess-live", "sess-old"}
    code, live = cli(capsys, "--db", db_url, "sessions", "list")
    assert [s["session_id"] for s in live] == ["sess-live"]
    code, audit = cli(capsys, "--db", db_url, "approvals", "audit", "verify")
    assert code == 0 and audit["ok"] and audit["requests"] == 3
    asyncio.run(_check_times(db_url))

    code, again = cli(capsys, "--db", db_url, "migrate", "from-kaizen")
    assert code == 7 and again["migrated"] == 0 and again["renamed"] == []
    assert _counts(again) == {BACKUPS[0]: (5, 0, 3, 2), BACKUPS[1]: (3, 0, 2, 1)}
    code, audit = cli(capsys, "--db", db_url, "approvals", "audit", "verify")
    assert audit["events"] == 3  # nothing written twice

    async def fix(db: DataFlow) -> None:  # the operator repairs a row: the next run takes it
        await insert(db, BACKUPS[0], [_request(db, "req-fixed", approvers_json='["x"]')])

    with_db(db_url, fix)
    code, last = cli(capsys, "--db", db_url, "migrate", "from-kaizen")
    assert last["migrated"] == 1 and _counts(last)[BACKUPS[0]] == (6, 1, 3, 2)


async def _check_times(url: str) -> None:
    async with service.Kaizen.open(url) as k:
        pending = await k.approval_storage.load("req-pending")
        assert pending is not None and pending.created_at == CREATED
        expired = await k.approval_storage.get_expired_pending_requests(timeout_seconds=3600)
        assert [r.id for r in expired] == ["req-pending"]  # as old as it says
        approved = await k.approval_storage.load("req-approved")
        assert approved is not None and approved.approved_at == CREATED + timedelta(minutes=5)
        session = await k.session_storage.load("sess-old", include_expired=True)
        assert session is not None and session.memory_pool_id == "pool-7"
        assert session.created_at == NOW - timedelta(days=3)
        assert session.last_accessed == NOW - timedelta(days=2)
        assert session.expires_at == NOW - timedelta(days=1) and session.ttl == timedelta(days=1)
        live = await k.session_storage.load("sess-live")
        assert live is not None and live.state == {"cart": ["a"], "step": 2}
        assert live.channel_activity == {"api": NOW - timedelta(minutes=10)}
        assert live.ttl == timedelta(hours=1)
        # The migrated session works as any other: a state merge persists.
        assert await k.sessions.update_session_state_async("sess-live", {"step": 3}, "cli")
        merged = await k.session_storage.load("sess-live")
        assert merged is not None and merged.state["step"] == 3
