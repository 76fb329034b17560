"""The migration's guarantees at their edges, on every database: an interrupted run
resumes, no row is lost (no key, NULL or duplicate ids, ids taken), refusals."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from migrate_support import (
    NOW,
    SPEC_REQUESTS,
    UPSTREAM_REQUESTS,
    UPSTREAM_SESSIONS,
    create,
    insert,
    iso,
    legacy_rows,
    stamp,
    with_db,
)

from dataflow import ConnectionLostError, DataFlow, SchemaError
from kaizen.cli import main
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalRequest
from kaizen.governance.storage import ExternalAgentApprovalStorage
from kaizen.integrations.nexus import CrossChannelSession, SessionStorage
from kaizen.migrate import _run, migrate_from_kaizen
from kaizen.migrate._tables import Tables

REQUESTS = "external_agent_approval_requests"
SESSIONS = "cross_channel_sessions"


def _request(id: str | None, **fields: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "external_agent_id": "agent-1",
        "requested_by": "user-1",
        "approvers_json": '["lead"]',
        "status": "pending",
        "request_metadata_json": "{}",
        "created_at": iso(NOW - timedelta(hours=1)),
    }
    return row | fields


def _session(id: str | None, **fields: Any) -> dict[str, Any]:
    row = {
        "id": id,
        "user_id": "u1",
        "last_accessed": iso(NOW),
        "expires_at": iso(NOW + timedelta(hours=1)),
        "created_at": iso(NOW),
    }
    return row | fields


async def test_an_interrupted_run_resumes(db: DataFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    await create(db, UPSTREAM_REQUESTS, UPSTREAM_SESSIONS)
    await insert(db, REQUESTS, [_request(f"r{i}") for i in range(5)])
    await insert(db, SESSIONS, [_session(f"s{i}") for i in range(3)])
    monkeypatch.setattr(_run, "_PAGE", 2)
    save = ExternalAgentApprovalStorage.save
    calls = 0

    async def failing(self: ExternalAgentApprovalStorage, request: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 4:
            raise ConnectionLostError("the server went away")
        return await save(self, request)

    monkeypatch.setattr(ExternalAgentApprovalStorage, "save", failing)
    with pytest.raises(ConnectionLostError):
        await migrate_from_kaizen(db)
    report = await migrate_from_kaizen(db)
    by_table = {t.table: (t.read, t.migrated, t.present) for t in report.tables}
    assert by_table == {REQUESTS: (5, 2, 3), SESSIONS: (3, 3, 0)}
    storage = ExternalAgentApprovalStorage(db)
    assert await storage.count_by_status(ApprovalStatus.PENDING) == 5
    assert (await storage.verify_audit()).ok


async def test_rows_without_a_key_none_lost(db: DataFlow, monkeypatch: pytest.MonkeyPatch) -> None:
    # A legacy table without its primary key: NULL and repeated ids, across page ends.
    await create(db, UPSTREAM_SESSIONS.replace("id TEXT PRIMARY KEY", "id TEXT"))
    rows = [_session("a"), _session("b"), _session("b"), _session("c")]
    rows += [_session(None), _session("e", user_id="")]
    await insert(db, SESSIONS, rows)
    monkeypatch.setattr(_run, "_PAGE", 2)
    report = await migrate_from_kaizen(db)
    (table,) = report.tables
    assert (table.read, table.migrated, table.present) == (6, 3, 1)
    assert sorted((s.id or "", s.reason[:10]) for s in table.skipped) == [
        ("", "the id is "),
        ("e", "user_id mu"),
    ]
    found = await SessionStorage(db).list_active()
    assert sorted(s.session_id for s in found) == ["a", "b", "c"]
    assert len(await legacy_rows(db, SESSIONS)) == 5  # every row still there (NULL id aside)


async def test_ids_already_taken(db: DataFlow) -> None:
    storage = ExternalAgentApprovalStorage(db)
    ours = ExternalAgentApprovalRequest(
        "taken", "agent-9", "user-9", ["boss"], ApprovalStatus.PENDING, None, {}, NOW
    )
    await storage.save(ours)
    gone = ExternalAgentApprovalRequest(
        "gone", "agent-9", "user-9", ["boss"], ApprovalStatus.PENDING, None, {}, NOW
    )
    await storage.save(gone)
    await storage.delete("gone")  # its audit trail stays
    sessions = SessionStorage(db)
    await sessions.save(CrossChannelSession(session_id="s-taken", user_id="mine"))
    await create(db, UPSTREAM_REQUESTS, UPSTREAM_SESSIONS)
    await insert(db, REQUESTS, [_request("taken"), _request("gone"), _request("new")])
    await insert(db, SESSIONS, [_session("s-taken"), _session("s-new")])
    report = await migrate_from_kaizen(db)
    by_table = {t.table: (t.read, t.migrated, t.present) for t in report.tables}
    assert by_table == {REQUESTS: (3, 1, 1), SESSIONS: (2, 1, 1)}
    (skipped,) = report.tables[0].skipped
    assert skipped.id == "gone" and "audit trail with this id exists" in skipped.reason
    kept = await storage.load("taken")
    assert kept is not None and kept.external_agent_id == "agent-9"  # not overwritten
    mine = await sessions.load("s-taken")
    assert mine is not None and mine.user_id == "mine"
    assert (await storage.verify_audit()).ok


async def test_rows_another_process_migrated_meanwhile(
    db: DataFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    await create(db, UPSTREAM_REQUESTS, UPSTREAM_SESSIONS)
    await insert(db, REQUESTS, [_request("r1")])
    await insert(db, SESSIONS, [_session("s1")])
    await migrate_from_kaizen(db)

    async def nothing_yet(self: Any, table: str, ids: Any) -> set[str]:
        return set()  # as if another run inserted them after this one looked

    monkeypatch.setattr(Tables, "present", nothing_yet)
    report = await migrate_from_kaizen(db)
    assert [(t.migrated, t.present, t.skipped) for t in report.tables] == [(0, 1, [])] * 2


async def test_values_the_database_refuses_are_reported(db: DataFlow) -> None:
    await create(db, UPSTREAM_REQUESTS, UPSTREAM_SESSIONS)
    await insert(db, REQUESTS, [_request("ancient", created_at="0999-12-31T00:00:00")])
    await insert(db, SESSIONS, [_session("ancient", created_at="0999-12-31T00:00:00")])
    report = await migrate_from_kaizen(db)
    assert [(t.migrated, [s.id for s in t.skipped]) for t in report.tables] == [
        (0, ["ancient"]),
        (0, ["ancient"]),
    ]


async def test_both_layouts_and_unknown_columns(db: DataFlow) -> None:
    await create(db, SPEC_REQUESTS, UPSTREAM_REQUESTS.replace("updated_at TEXT", "extra TEXT"))
    spec = _request("same") | {"created_at": stamp(db, NOW), "approval_reason": "spec"}
    await insert(db, "external_agent_approval_request", [spec])
    await insert(db, REQUESTS, [_request("same", approval_reason="upstream"), _request("other")])
    report = await migrate_from_kaizen(db)
    assert report.renamed == [
        ("external_agent_approval_request", "external_agent_approval_request_kaizen_backup")
    ]
    by_table = {t.table: (t.read, t.migrated, t.present, t.ignored_columns) for t in report.tables}
    assert by_table == {
        "external_agent_approval_request_kaizen_backup": (1, 1, 0, []),
        REQUESTS: (2, 1, 1, ["extra"]),
    }
    same = await ExternalAgentApprovalStorage(db).load("same")
    assert same is not None and same.approval_reason == "spec"  # the first source wins


async def test_a_table_without_ids(db: DataFlow) -> None:
    await create(db, "CREATE TABLE cross_channel_sessions (user_id TEXT, state_json TEXT)")
    await insert(db, SESSIONS, [{"user_id": "u1", "state_json": "{}"}])
    report = await migrate_from_kaizen(db)
    (table,) = report.tables
    assert table.read == 0 and table.skipped[0].id is None
    assert "has no id column" in table.skipped[0].reason


def test_the_spec_table_and_its_backup_both_taken(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = SPEC_REQUESTS.replace(
        "external_agent_approval_request (", "external_agent_approval_request_kaizen_backup ("
    )
    with_db(db_url, lambda db: create(db, SPEC_REQUESTS, backup))
    assert main(["--db", db_url, "migrate", "from-kaizen"]) == 1
    assert "rename or drop one of them by hand" in capsys.readouterr().err

    async def unchanged(db: DataFlow) -> None:
        with pytest.raises(SchemaError):
            await migrate_from_kaizen(db, dry_run=True)

    with_db(db_url, unchanged)


def test_text_output(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with_db(db_url, lambda db: create(db, "CREATE TABLE unrelated (x TEXT)"))
    assert main(["--db", db_url, "migrate", "from-kaizen"]) == 0
    assert capsys.readouterr().out == "no Kaizen tables to migrate\n"

    async def seed(db: DataFlow) -> None:
        await create(db, SPEC_REQUESTS.replace("rejection_reason TEXT", "legacy_note TEXT"))
        row = _request("r1") | {"created_at": stamp(db, NOW)}
        odd = _request("r2", status="odd") | {"created_at": stamp(db, NOW)}
        await insert(db, "external_agent_approval_request", [row, odd])

    with_db(db_url, seed)
    assert main(["--db", db_url, "migrate", "from-kaizen", "--dry-run"]) == 7
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "dry run: nothing was written"
    assert out[1].startswith("would rename external_agent_approval_request to ")
    assert out[2].split() == ["TABLE", "READ", "MIGRATED", "PRESENT", "SKIPPED"]
    assert out[3].split() == ["external_agent_approval_request", "2", "1", "0", "1"]
    assert out[4] == "skipped external_agent_approval_request r2: unknown status 'odd'"
    assert out[5] == "external_agent_approval_request: columns not migrated: legacy_note"
    assert main(["--db", db_url, "migrate", "from-kaizen"]) == 7
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("renamed external_agent_approval_request to ")

    async def upstream(db: DataFlow) -> None:
        await create(db, UPSTREAM_SESSIONS)
        await insert(db, SESSIONS, [_session("s1")])

    with_db(db_url, upstream)
    assert main(["--db", db_url, "migrate", "from-kaizen"]) == 7
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "TABLE"  # nothing renamed this time
    assert [line.split() for line in out[1:3]] == [
        ["external_agent_approval_request_kaizen_backup", "2", "0", "1", "1"],
        ["cross_channel_sessions", "1", "1", "0", "0"],
    ]
    assert len(out) == 5  # the row still skipped, the column still not migrated


def test_a_missing_sqlite_file_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nowhere" / "kaizen.db"
    assert main(["--db", f"sqlite:///{path}", "migrate", "from-kaizen", "--dry-run"]) != 0
    assert "no database at" in capsys.readouterr().err
    assert not path.parent.exists()


def test_report_totals() -> None:
    report = _run.MigrationReport(dry_run=True)
    report.tables = [_run.TableReport("a", "b", read=3, migrated=2)]
    report.tables[0].skipped.append(_run.SkippedRow("x", "why"))
    assert (report.migrated, report.skipped) == (2, 1)
