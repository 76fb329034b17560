"""``kaizen maintain`` logs each pass with its time and counts, as text or JSON."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import run, seed_requests

from kaizen import service
from kaizen.integrations.nexus import CrossChannelSession
from refusals import SECRET, closed_port, refused_url

_TEXT = re.compile(r"(\S+Z) (INFO|ERROR) kaizen\.maintain: (.*)")


def _expire_a_session(url: str) -> None:
    async def go() -> None:
        async with service.Kaizen.open(url) as k:
            past = datetime.now(UTC) - timedelta(hours=2)
            old = CrossChannelSession(user_id="u", created_at=past, ttl=timedelta(hours=1))
            await k.session_storage.save(old)

    asyncio.run(go())


def test_each_pass_as_json(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed_requests(db_url, "agent-m", ["lead"], 2, timeout_seconds=0.05)
    _expire_a_session(db_url)
    time.sleep(0.2)
    argv = ("--db", db_url, "maintain", "--every", "0.01", "--passes", "2", "--log-format", "json")
    code, out, err = run(capsys, *argv)
    assert code == 0 and out == ""
    records = [json.loads(line) for line in err.splitlines()]
    passes = [r for r in records if r["logger"] == "kaizen.maintain" and "pass" in r]
    assert [p["pass"] for p in passes] == [1, 2]
    first, second = passes
    assert (first["approvals_timed_out"], first["approvals_escalated"]) == (2, 0)
    assert (first["sessions_deleted"], second["approvals_timed_out"]) == (1, 0)
    assert first["ok"] is True and first["level"] == "INFO"
    assert first["message"].startswith("pass 1: timed out 2 approval(s)")
    assert datetime.fromisoformat(first["time"]) <= datetime.fromisoformat(second["time"])
    assert records[-1]["message"] == "maintenance stopped" and records[-1]["passes"] == 2


def test_each_pass_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    code, _, err = run(capsys, "--db", url, "maintain", "--every", "0.01", "--passes", "1")
    assert code == 0
    lines = [_TEXT.fullmatch(line) for line in err.splitlines()]
    assert all(lines), err
    stamps = [datetime.fromisoformat(m[1]) for m in lines if m]
    assert all(s.utcoffset() is not None and not s.utcoffset() for s in stamps)  # UTC
    assert [m[3] for m in lines if m][1:] == [
        "pass 1: timed out 0 approval(s), escalated 0 approval(s), deleted 0 session(s)",
        "maintenance stopped",
    ]


def test_a_pass_that_cannot_reach_the_database_is_logged_and_the_next_tries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://u:{SECRET}@127.0.0.1:{closed_port()}/x"
    argv = ("--db", url, "maintain", "--every", "0.01", "--passes", "2", "--log-format", "json")
    code, _, err = run(capsys, *argv)
    assert code == 6  # the last pass failed
    records = [json.loads(line) for line in err.splitlines()]
    failed = [r for r in records if r["level"] == "ERROR"]
    assert [r["pass"] for r in failed] == [1, 2] and not any(r["ok"] for r in failed)
    assert all("connection refused" in r["message"] for r in failed)
    assert SECRET not in err and records[-1]["message"] == "maintenance stopped"


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
def test_a_database_refusing_the_credentials_stops_it(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = refused_url(db_url, "user")
    code, _, err = run(capsys, "--db", url, "maintain", "--every", "0.01", "--passes", "3")
    assert code == 6 and "pass 1" not in err  # nothing would change at the next pass
    assert err.splitlines()[-1].startswith("kaizen: error: cannot use database")
