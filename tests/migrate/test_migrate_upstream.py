"""``kaizen migrate from-kaizen`` on the upstream library's own tables (plural names,
every column text, ISO times with and without offsets, ``""`` for unset, JSON in
text): copied into ours, the originals left alone, on every database."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from migrate_support import (
    NOW,
    UPSTREAM_REQUESTS,
    UPSTREAM_SESSIONS,
    cli,
    create,
    insert,
    iso,
    legacy_rows,
    table_names,
    with_db,
)

from dataflow import DataFlow
from kaizen import service
from kaizen.governance import ApprovalStatus

REQUESTS = "external_agent_approval_requests"
SESSIONS = "cross_channel_sessions"
T1 = NOW - timedelta(days=3)
T2 = datetime(2025, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)


def _request(id: str, **fields: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "external_agent_id": "copilot-001",
        "requested_by": "user-123",
        "approvers_json": '["lead-456"]',
        "status": "pending",
        "approval_reason": "",
        "request_metadata_json": json.dumps({"cost": 99.5, "tags": ["x"]}),
        "approved_at": "",
        "approved_by": "",
        "rejection_reason": "",
        "created_at": iso(T1, 2),
        "updated_at": iso(T1, 2),
    }
    return row | fields


def _session(id: str, **fields: Any) -> dict[str, Any]:
    seen = NOW - timedelta(minutes=5)
    row = {
        "id": id,
        "user_id": "u1",
        "last_accessed": iso(seen),
        "expires_at": iso(NOW + timedelta(minutes=25)).replace("+00:00", "Z"),
        "state_json": '{"k": 1, "nested": {"list": [1, 2.5, null]}}',
        "channel_activity_json": json.dumps({"api": iso(seen, -5), "mcp": ""}),
        "memory_pool_id": "",
        "created_at": iso(NOW - timedelta(minutes=30), None),
        "updated_at": iso(seen, None),
    }
    return row | fields


async def _seed(db: DataFlow) -> None:
    await create(db, UPSTREAM_REQUESTS, UPSTREAM_SESSIONS)
    await insert(
        db,
        REQUESTS,
        [
            _request("up-pending", approval_reason="deploy to production"),
            _request(
                "up-approved",
                status="approved",
                approved_at=iso(T2 + timedelta(hours=1)).replace("+00:00", "Z"),
                approved_by="lead-456",
                created_at=iso(T2, None),
            ),
            _request(
                "up-timeout",
                status="timeout",
                approved_at=iso(T2 + timedelta(hours=2), -5),
                created_at=iso(T2, None).replace("T", " "),
                updated_at="",
            ),
            _request("up-nan", request_metadata_json='{"cost": NaN}'),
            _request("up-cut", request_metadata_json='{"cost": '),
            _request("up-status", status="escalated"),
        ],
    )
    await insert(
        db,
        SESSIONS,
        [
            _session("us-full"),
            _session(
                "us-unset",
                last_accessed="",
                expires_at="",
                state_json="",
                channel_activity_json="",
                created_at=iso(NOW - timedelta(minutes=10), 5),
            ),
            _session("us-nobody", user_id=""),
            _session("us-when", channel_activity_json='{"api": "yesterday"}'),
        ],
    )


def _counts(report: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    return {
        t["table"]: (t["read"], t["migrated"], t["present"], len(t["skipped"]))
        for t in report["tables"]
    }


OURS = ("external_agent_approval_request", "cross_channel_session", "dataflow_schema")


def test_upstream_tables_are_copied(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with_db(db_url, _seed)
    originals = with_db(db_url, _originals)

    code, dry = cli(capsys, "--db", db_url, "migrate", "from-kaizen", "--dry-run")
    assert code == 7 and dry["renamed"] == []
    assert _counts(dry) == {REQUESTS: (6, 3, 0, 3), SESSIONS: (4, 2, 0, 2)}
    assert with_db(db_url, lambda db: table_names(db, *OURS)) == set()  # nothing written

    code, done = cli(capsys, "--db", db_url, "migrate", "from-kaizen")
    assert code == 7 and _counts(done) == _counts(dry)
    assert {t["into"] for t in done["tables"]} == {OURS[0], OURS[1]}
    skipped = {s["id"]: s["reason"] for t in done["tables"] for s in t["skipped"]}
    assert set(skipped) == {"up-nan", "up-cut", "up-status", "us-nobody", "us-when"}
    assert "NaN is not JSON" in skipped["up-nan"]
    assert "unknown status 'escalated'" in skipped["up-status"]
    assert "user_id" in skipped["us-nobody"]
    assert "channel_activity_json['api'] is not an ISO 8601 time" in skipped["us-when"]
    assert with_db(db_url, _originals) == originals  # left exactly as they were

    code, listed = cli(capsys, "--db", db_url, "approvals", "list")
    by_id = {r["id"]: r for r in listed["items"]}
    assert code == 0 and set(by_id) == {"up-pending", "up-approved", "up-timeout"}
    assert by_id["up-pending"]["approval_reason"] == "deploy to production"
    assert by_id["up-timeout"]["approval_reason"] is None  # "" was unset
    assert by_id["up-timeout"]["approved_by"] is None and by_id["up-timeout"]["status"] == "timeout"
    assert by_id["up-approved"]["request_metadata"] == {"cost": 99.5, "tags": ["x"]}
    code, sessions = cli(capsys, "--db", db_url, "sessions", "list")
    assert code == 0 and {s["session_id"] for s in sessions} == {"us-full", "us-unset"}
    code, audit = cli(capsys, "--db", db_url, "approvals", "audit", "verify")
    assert code == 0 and audit["ok"] and audit["events"] == 3
    asyncio.run(_check_values(db_url))

    code, again = cli(capsys, "--db", db_url, "migrate", "from-kaizen")
    assert code == 7 and again["migrated"] == 0
    assert _counts(again) == {REQUESTS: (6, 0, 3, 3), SESSIONS: (4, 0, 2, 2)}


async def _originals(db: DataFlow) -> list[list[dict[str, Any]]]:
    return [await legacy_rows(db, REQUESTS), await legacy_rows(db, SESSIONS)]


async def _check_values(url: str) -> None:
    async with service.Kaizen.open(url) as k:
        store = k.approval_storage
        pending = await store.load("up-pending")
        assert pending is not None and pending.created_at == T1  # "+02:00" read as its instant
        assert pending.approved_at is None and pending.rejection_reason is None
        approved = await store.load("up-approved")
        assert approved is not None and approved.created_at == T2  # naive: UTC, microseconds kept
        assert approved.approved_at == T2 + timedelta(hours=1)
        timed_out = await store.load("up-timeout")
        assert timed_out is not None and timed_out.approved_at == T2 + timedelta(hours=2)
        assert [r.id for r in await store.get_expired_pending_requests(3600)] == ["up-pending"]
        assert await store.count_by_status(ApprovalStatus.PENDING) == 1
        # A migrated pending request is decided like any other.
        decided = await k.approvals.approve_request("up-pending", "lead-456")
        assert decided.status is ApprovalStatus.APPROVED
        assert (await k.approvals.verify_audit()).ok

        full = await k.session_storage.load("us-full")
        assert full is not None and full.memory_pool_id is None  # "" was unset
        assert full.state == {"k": 1, "nested": {"list": [1, 2.5, None]}}
        assert full.channel_activity == {"api": NOW - timedelta(minutes=5)}  # "" skipped
        assert full.created_at == NOW - timedelta(minutes=30)
        assert full.ttl == timedelta(minutes=30)  # expires_at - last_accessed
        unset = await k.session_storage.load("us-unset")
        assert unset is not None and unset.state == {} and unset.channel_activity == {}
        assert unset.last_accessed == unset.created_at == NOW - timedelta(minutes=10)
        assert unset.expires_at == unset.last_accessed + timedelta(hours=1)
