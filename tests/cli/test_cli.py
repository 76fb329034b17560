"""The ``kaizen`` command, driven in-process and as a subprocess, on every database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import run

from kaizen import service
from kaizen.cli import main
from kaizen.integrations.nexus import CrossChannelSession

KAIZEN = [sys.executable, "-m", "kaizen.cli"]


def _seed(url: str, *, timeout: float = 3600, n: int = 2) -> list[str]:
    async def go() -> list[str]:
        async with service.Kaizen.open(url) as k:
            k.approvals.set_approvers("agent-a", ["lead", "lead-456"], timeout_seconds=timeout)
            ids = [
                await k.approvals.request_approval("agent-a", "user-1", {"i": i}) for i in range(n)
            ]
            session = await k.sessions.create_session_async(user_id="user-1")
            await k.sessions.update_session_state_async(session.session_id, {"k": 1}, "api")
            return [*ids, session.session_id]

    return asyncio.run(go())


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "kaizen 0.1.0" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 0 and "approvals" in out and "sessions" in out
    assert "policies" in out and "delegations" in out


def test_approvals_list_show_and_filters(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, _session = _seed(db_url)
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list")
    assert code == 0 and first in out and second in out and "STATUS" in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--json", "--limit", "1")
    page = json.loads(out)
    assert [r["id"] for r in page["items"]] == [second] and page["next_offset"] == 1  # newest first
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--limit", "1")
    assert second in out and first not in out and "(more: --offset 1)" in out
    code, out, _ = run(
        capsys, "--db", db_url, "approvals", "list", "--limit", "1", "--offset", "1", "--json"
    )
    page = json.loads(out)
    assert [r["id"] for r in page["items"]] == [first] and page["next_offset"] is None

    def ids(*args: str) -> set[str]:
        code, out, err = run(capsys, "--db", db_url, "approvals", "list", *args, "--json")
        assert code == 0, err
        return {r["id"] for r in json.loads(out)["items"]}

    assert ids("--approver", "lead") == {first, second}
    assert ids("--approver", "lea") == set()
    assert ids("--agent", "agent-a") == {first, second}
    assert ids("--requested-by", "user-1") == {first, second}
    assert ids("--decided-by", "lead") == set()
    # Read as a user: only what they made or may decide.
    assert ids("--as", "lead-456") == {first, second}
    assert ids("--as", "user-1") == {first, second}
    assert ids("--as", "stranger") == set()
    code, _, err = run(capsys, "--db", db_url, "approvals", "show", first, "--as", "stranger")
    assert code == 3 and first in err
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--status", "approved")
    assert code == 0 and "no approval requests" in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "show", first, "--json")
    shown = json.loads(out)
    assert shown["id"] == first and shown["approvers"] == ["lead", "lead-456"]
    code, out, _ = run(capsys, "--db", db_url, "approvals", "show", first)
    assert code == 0 and "external_agent_id" in out and "agent-a" in out


def test_approve_reject_and_their_errors(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second, _session = _seed(db_url)
    code, out, err = run(capsys, "--db", db_url, "approvals", "approve", first, "--by", "intruder")
    assert code == 5 and "Traceback" not in err and err.count("\n") == 1
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", first, "--by", "lead")
    assert code == 0 and f"approved {first}" in out
    code, out, err = run(capsys, "--db", db_url, "approvals", "approve", first, "--by", "lead")
    assert code == 4 and "approved" in err
    code, out, _ = run(
        capsys,
        "--db",
        db_url,
        "approvals",
        "reject",
        second,
        "--by",
        "lead-456",
        "--reason",
        "too risky",
        "--json",
    )
    rejected = json.loads(out)
    assert code == 0 and rejected["status"] == "rejected"
    assert rejected["rejection_reason"] == "too risky"
    code, _, err = run(
        capsys, "--db", db_url, "approvals", "reject", first, "--by", "lead", "--reason", " "
    )
    assert code == 7 and "a rejection needs a reason" in err  # as the API says
    code, _, err = run(capsys, "--db", db_url, "approvals", "show", "missing-id")
    assert code == 3 and "missing-id" in err and "Traceback" not in err


def test_sweep_and_audit_verify(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, _second, _session = _seed(db_url, timeout=0.05)
    time.sleep(0.2)  # let both deadlines pass
    code, out, _ = run(capsys, "--db", db_url, "approvals", "sweep", "--json")
    assert code == 0 and json.loads(out) == {"timed_out": 2, "escalated": 0}
    code, out, _ = run(capsys, "--db", db_url, "approvals", "sweep")
    assert code == 0 and out == "escalated 0, timed out 0 request(s)\n"
    code, out, _ = run(capsys, "--db", db_url, "approvals", "audit", "verify")
    assert code == 0 and "audit ok: 4 event(s) in 2 chain(s)" in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "audit", "show", first, "--json")
    assert code == 0 and [e["event"] for e in json.loads(out)] == ["requested", "timed_out"]
    code, out, _ = run(capsys, "--db", db_url, "approvals", "audit", "show", first)
    assert code == 0 and "SEQ" in out and "timed_out" in out
    show_as = ("approvals", "audit", "show", first, "--as")
    code, out, _ = run(capsys, "--db", db_url, *show_as, "lead", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, _, err = run(capsys, "--db", db_url, *show_as, "stranger")
    assert code == 3 and first in err

    async def tamper() -> None:
        async with service.Kaizen.open(db_url) as k:
            await k.db.update_where(
                "ApprovalAuditRecord", {"request_id": first, "seq": 1}, {"actor": "mallory"}
            )

    asyncio.run(tamper())
    code, out, _ = run(capsys, "--db", db_url, "approvals", "audit", "verify")
    assert code == 8 and "audit FAILED" in out and first in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "audit", "verify", "--json")
    assert code == 8 and json.loads(out)["ok"] is False


def _expired_session(url: str) -> str:
    async def go() -> str:
        async with service.Kaizen.open(url) as k:
            past = datetime.now(UTC) - timedelta(hours=2)
            old = CrossChannelSession(user_id="user-2", created_at=past, ttl=timedelta(hours=1))
            return await k.session_storage.save(old)

    return asyncio.run(go())


def test_sessions_commands(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    *_ids, session_id = _seed(db_url)
    expired_id = _expired_session(db_url)
    code, out, _ = run(capsys, "--db", db_url, "sessions", "list")
    assert code == 0 and session_id in out and expired_id not in out
    code, out, _ = run(capsys, "--db", db_url, "sessions", "list", "--all", "--json")
    listed = {s["session_id"]: s["expired"] for s in json.loads(out)}
    assert listed == {session_id: False, expired_id: True}
    code, out, _ = run(capsys, "--db", db_url, "sessions", "list", "--user", "user-1", "--json")
    assert [s["session_id"] for s in json.loads(out)] == [session_id]
    code, out, _ = run(capsys, "--db", db_url, "sessions", "list", "--user", "nobody", "--all")
    assert code == 0 and "no sessions" in out
    code, out, _ = run(capsys, "--db", db_url, "sessions", "show", session_id, "--json")
    shown = json.loads(out)
    assert shown["state"] == {"k": 1} and "api" in shown["channel_activity"]
    code, out, _ = run(capsys, "--db", db_url, "sessions", "show", expired_id, "--json")
    assert code == 0 and json.loads(out)["expired"] is True
    code, _, err = run(capsys, "--db", db_url, "sessions", "show", "nope")
    assert code == 3 and "nope" in err
    # Read as a user: only their own sessions.
    as_user = ("sessions", "list", "--all", "--json", "--as")
    code, out, _ = run(capsys, "--db", db_url, *as_user, "user-1")
    assert [s["session_id"] for s in json.loads(out)] == [session_id]
    code, out, _ = run(capsys, "--db", db_url, *as_user, "stranger")
    assert json.loads(out) == []
    code, _, err = run(capsys, "--db", db_url, "sessions", "show", session_id, "--as", "stranger")
    assert code == 3 and session_id in err
    code, out, _ = run(capsys, "--db", db_url, "sessions", "list", "--all", "--offset", "1")
    assert code == 0 and out.count("\n") == 2  # the header and one of the two sessions
    code, out, _ = run(capsys, "--db", db_url, "sessions", "cleanup")
    assert code == 0 and "deleted 1 expired session(s)" in out
    code, out, _ = run(capsys, "--db", db_url, "sessions", "cleanup", "--json")
    assert json.loads(out) == {"deleted": 0}


def test_maintain_runs_passes(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url, timeout=0.05)
    time.sleep(0.2)
    code, out, err = run(capsys, "--db", db_url, "maintain", "--every", "0.01", "--passes", "2")
    assert code == 0 and out == ""  # a log, on stderr
    assert "pass 1: timed out 2 approval(s), escalated 0 approval(s)" in err
    assert "pass 2: timed out 0 approval(s), escalated 0 approval(s)" in err


def test_maintain_rejects_a_bad_interval(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--db", "sqlite:///:memory:", "maintain", "--every", "0")
    assert code == 7 and "--every" in err


def test_unreachable_database_is_one_line_without_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql://user:s3cret@127.0.0.1:1/nowhere"
    code, out, err = run(capsys, "--db", url, "approvals", "list")
    assert code == 6
    assert "s3cret" not in err + out and "Traceback" not in err
    assert err.startswith("kaizen: error: cannot reach database postgresql://user:***@")


def test_database_url_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    _seed(url)
    monkeypatch.setenv("KAIZEN_DATABASE_URL", url)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    code, out, _ = run(capsys, "approvals", "list", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 2  # KAIZEN_DATABASE_URL first
    monkeypatch.delenv("KAIZEN_DATABASE_URL")
    monkeypatch.setenv("DATABASE_URL", url)  # what DataFlow() reads: the CLI too
    code, out, _ = run(capsys, "approvals", "list", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 2


def test_db_also_after_the_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    _seed(url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAIZEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, out, _ = run(capsys, "approvals", "list", "--db", url, "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 2
    other = f"sqlite:///{tmp_path / 'other.db'}"
    code, out, _ = run(capsys, "--db", other, "approvals", "list", "--db", url, "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 2  # the later --db wins
    code, out, _ = run(capsys, "approvals", "audit", "verify", "--db", url)
    assert code == 0 and "audit ok" in out
    code, out, _ = run(capsys, "sessions", "list", "--db", url, "--json")
    assert code == 0 and len(json.loads(out)) == 1
    assert not (tmp_path / "kaizen.db").exists()  # the default was never touched


def test_default_database_is_kaizen_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KAIZEN_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    code, _, err = run(capsys, "sessions", "list")  # reading creates nothing
    assert code == 6 and "no database at kaizen.db" in err
    assert not (tmp_path / "kaizen.db").exists()
    code, _, _ = run(capsys, "sessions", "cleanup")  # a write sets it up
    assert code == 0 and (tmp_path / "kaizen.db").exists()
    code, out, _ = run(capsys, "sessions", "list")
    assert code == 0 and "no sessions" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("approvals", "list"),
        ("approvals", "show", "x"),
        ("approvals", "approve", "x", "--by", "u"),
        ("approvals", "approve", "x", "--as", "u", "--comment", "ok", "--on-behalf-of", "v"),
        ("approvals", "approve", "x", "--as", "u", "--metadata", '{"cost": 1}'),
        ("approvals", "reject", "x", "--by", "u", "--reason", "no"),
        ("approvals", "reject", "x", "--as", "u", "--reason", "no", "--on-behalf-of", "v"),
        ("approvals", "audit", "show", "x"),
        ("approvals", "audit", "verify"),
        ("sessions", "list"),
        ("sessions", "show", "x"),
        ("policies", "list"),
        ("policies", "show", "x"),
        ("policies", "delete", "x"),
        ("delegations", "list", "--approver", "a"),
        ("delegations", "revoke", "a", "--to", "b"),
    ],
)
def test_commands_on_a_missing_sqlite_file_create_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    code, _, err = run(capsys, "--db", f"sqlite:///{missing}", *argv)
    assert code == 6 and f"no database at {missing}" in err and err.count("\n") == 1
    assert not (tmp_path / "no").exists()


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["approvals", "list", "--status", "bogus"])
    assert exc.value.code == 2


def test_maintain_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    env = {**os.environ, "KAIZEN_DATABASE_URL": url}
    proc = subprocess.Popen(
        [*KAIZEN, "maintain", "--every", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        while "pass 1:" not in (line := proc.stderr.readline()):  # after the start line
            assert line, "maintain ended before its first pass"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "maintenance stopped" in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
def test_a_database_that_does_not_exist_exits_6(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = db_url.rsplit("/", 1)[0] + "/no_such_database_x"
    code, _, err = run(capsys, "--db", url, "approvals", "list")
    assert code == 6 and "cannot use database" in err and "no_such_database_x" in err
    assert "Traceback" not in err and err.count("\n") == 1
