"""``kaizen sessions create`` and ``update``: the cli channel of a cross-channel session,
on every database; and several processes merging into one session at once."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_support import run

from kaizen import service
from kaizen.cli.sessions import parse_state
from kaizen.integrations.nexus import CrossChannelSession, SessionValidationError


def _stored(url: str, session_id: str) -> dict[str, Any]:
    """The session as stored, read by services of their own."""

    async def go() -> dict[str, Any]:
        async with service.Kaizen.open(url, create=False) as k:
            return await service.get_session(k, session_id)

    return asyncio.run(go())


def _all_sessions(url: str) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        async with service.Kaizen.open(url) as k:
            return await service.list_sessions(k, include_expired=True)

    return asyncio.run(go())


def _create(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "--db", url, "sessions", "create", *argv, "--json")
    assert code == 0, err
    created: dict[str, Any] = json.loads(out)
    return created


def test_create_records_the_cli_channel_and_the_initial_state(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    created = _create(
        capsys, db_url, "--user", "alice", "--ttl-hours", "2", "--state", '{"a": 1}', "--set", "b=x"
    )
    assert created["user_id"] == "alice" and created["ttl_seconds"] == 7200
    assert created["state"] == {"a": 1, "b": "x"}
    assert list(created["channel_activity"]) == ["cli"]
    assert created["channel_activity"]["cli"] == created["created_at"] == created["last_accessed"]
    stored = _stored(db_url, created["session_id"])
    assert stored["expires_at"] - stored["created_at"] == timedelta(hours=2)
    assert stored["state"] == {"a": 1, "b": "x"}
    plain = _create(capsys, db_url, "--user", "bob")
    assert plain["ttl_seconds"] == 3600 and plain["state"] == {}
    assert list(plain["channel_activity"]) == ["cli"]
    code, out, _ = run(capsys, "--db", db_url, "sessions", "create", "--user", "carol")
    assert code == 0 and "carol" in out and "channel_activity" in out  # key-value lines


def test_update_merges_keys_as_the_cli_channel(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = _create(capsys, db_url, "--user", "alice", "--state", '{"keep": true, "n": 1}')[
        "session_id"
    ]
    argv = ("--db", db_url, "sessions", "update", sid)
    code, out, err = run(capsys, *argv, "--state", '{"n": 2, "o": {"x": [1]}}', "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == {"keep": True, "n": 2, "o": {"x": [1]}}
    pairs = ("--set", "num=5", "--set", "word=hello", "--set", 'obj={"k": null}')
    pairs += ("--set", "nan=NaN", "--set", "eq=a=b", "--set", "empty=")
    code, out, err = run(capsys, *argv, *pairs, "--as", "alice", "--json")
    assert code == 0, err
    state = json.loads(out)["state"]
    assert state == {
        "keep": True,
        "n": 2,
        "o": {"x": [1]},
        "num": 5,
        "word": "hello",
        "obj": {"k": None},
        "nan": "NaN",  # not JSON (we refuse NaN): text
        "eq": "a=b",
        "empty": "",
    }
    assert _stored(db_url, sid)["state"] == state
    code, out, _ = run(capsys, *argv, "--set", "k=1")
    assert code == 0 and "state" in out


def test_update_refuses_strangers_bad_input_and_missing_sessions(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = _create(capsys, db_url, "--user", "alice", "--state", '{"v": 1}')["session_id"]
    before = _stored(db_url, sid)
    argv = ("--db", db_url, "sessions", "update")
    code, _, err = run(capsys, *argv, sid, "--set", "v=2", "--as", "mallory")
    assert code == 3 and sid in err  # not theirs: as if it did not exist
    for bad in (
        ("--state", "[1, 2]"),
        ("--state", "{not json"),
        ("--state", '{"v": NaN}'),
        ("--set", "novalue"),
        ("--set", "=1"),
        ("--set", "big=18446744073709551616"),
        (),
    ):
        code, _, err = run(capsys, *argv, sid, *bad)
        assert code == 7, (bad, err)
    assert _stored(db_url, sid) == before  # nothing was written
    code, _, err = run(capsys, *argv, "missing", "--set", "v=2")
    assert code == 3 and "missing" in err


def test_expired_sessions_cannot_be_updated(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def expired() -> str:
        async with service.Kaizen.open(db_url) as k:
            past = datetime.now(UTC) - timedelta(hours=2)
            old = CrossChannelSession(user_id="u", created_at=past, ttl=timedelta(hours=1))
            return await k.session_storage.save(old)

    sid = asyncio.run(expired())
    code, _, err = run(capsys, "--db", db_url, "sessions", "update", sid, "--set", "v=1")
    assert code == 3 and sid in err
    assert _stored(db_url, sid)["state"] == {}


@pytest.mark.parametrize("ttl", ["0", "-1", "inf", "nan", "1e9"])
def test_create_refuses_bad_ttls_and_writes_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str], ttl: str
) -> None:
    code, _, err = run(
        capsys, "--db", db_url, "sessions", "create", "--user", "u", "--ttl-hours", ttl
    )
    assert code == 7 and "ttl_hours" in err
    assert _all_sessions(db_url) == []


def test_create_makes_the_database_and_update_needs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    code, _, err = run(capsys, "--db", url, "sessions", "update", "s", "--set", "k=1")
    assert code == 6 and "no database" in err and not (tmp_path / "new.db").exists()
    code, _, err = run(capsys, "--db", url, "sessions", "create", "--user", "u", "--state", "[]")
    assert code == 7 and not (tmp_path / "new.db").exists()  # bad input: nothing opened
    assert _create(capsys, url, "--user", "u")["user_id"] == "u"
    assert (tmp_path / "new.db").exists()


def test_parse_state() -> None:
    assert parse_state(None, None) is None
    assert parse_state('{"a": 1}', None) == {"a": 1}
    assert parse_state('{"a": 1}', ["a=2", "b=[1]"]) == {"a": 2, "b": [1]}
    with pytest.raises(SessionValidationError, match="JSON object"):
        parse_state('"text"', None)


_MERGER = """
import asyncio, sys
from kaizen import service

async def go() -> None:
    url, sid, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    async with service.Kaizen.open(url, create=False) as k:
        for i in range(n):
            await service.update_session_state(k, sid, {f"{prefix}-{i}": i}, channel=prefix)

asyncio.run(go())
"""


async def test_processes_merging_different_keys_at_once_lose_none(db_url: str) -> None:
    async with service.Kaizen.open(db_url) as k:
        sid = (await service.create_session(k, "u", state={"base": 0}))["session_id"]
    cli = [sys.executable, "-m", "kaizen.cli", "--db", db_url, "sessions", "update", sid]
    commands = [[*cli, "--set", f"cli-{n}={n}", "--as", "u"] for n in range(4)]
    commands += [[sys.executable, "-c", _MERGER, db_url, sid, f"s{n}", "25"] for n in range(2)]
    procs = [
        await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        for argv in commands
    ]
    results = await asyncio.gather(*(asyncio.wait_for(p.communicate(), 120) for p in procs))
    assert [p.returncode for p in procs] == [0] * len(procs), [err for _, err in results]
    async with service.Kaizen.open(db_url, create=False) as k:
        session = await service.get_session(k, sid)
    expected = {"base": 0, **{f"cli-{n}": n for n in range(4)}}
    expected |= {f"s{n}-{i}": i for n in range(2) for i in range(25)}
    assert session["state"] == expected
    assert set(session["channel_activity"]) == {"cli", "s0", "s1"}
