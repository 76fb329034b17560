"""``kaizen delegations``: a delegate votes for the approver until revoked or ``--until``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cli_support import load, run, seed_requests

from kaizen.cli.delegations import parse_until


def test_a_delegate_votes_for_the_approver_until_revoked(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    r1, r2, r3, r4, r5 = seed_requests(db_url, "agent-d", ["lead", "lead-2"], 5, quorum=2)
    base = ("--db", db_url, "delegations")
    code, out, err = run(capsys, *base, "add", "lead", "--to", "deputy", "--as", "admin", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert (made["approver_id"], made["delegate_id"], made["until"]) == ("lead", "deputy", None)
    assert made["created_by"] == "admin" and made["created_at"]
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    stamp = until.isoformat().replace("+00:00", "Z")
    code, out, _ = run(capsys, *base, "add", "lead-2", "--to", "deputy", "--until", stamp)
    assert code == 0
    assert out == f"deputy may vote for lead-2 until {until.isoformat()} (made by lead-2)\n"

    def listed(*args: str) -> list[tuple[str, str]]:
        code, out, err = run(capsys, *base, "list", *args, "--json")
        assert code == 0, err
        return [(d["approver_id"], d["delegate_id"]) for d in json.loads(out)]

    assert listed() == [("lead", "deputy"), ("lead-2", "deputy")]
    assert listed("--approver", "lead") == [("lead", "deputy")]
    assert listed("--delegate", "deputy", "--approver", "lead-2") == [("lead-2", "deputy")]
    assert listed("--delegate", "nobody") == []
    code, out, _ = run(capsys, *base, "list")
    assert "DELEGATE_ID" in out and until.strftime("%Y-%m-%d %H:%MZ") in out and "admin" in out

    approvals = ("--db", db_url, "approvals")
    code, out, _ = run(capsys, *approvals, "approve", r1, "--as", "deputy", "--comment", "for lead")
    assert code == 0
    assert out == (
        f"recorded vote: 1 of 2 approvals; {r1} is still pending "
        "(voted as deputy on behalf of lead)\n"
    )
    code, _, err = run(capsys, *approvals, "approve", r1, "--as", "lead")
    assert code == 4 and "deputy voted for them" in err  # their vote is in
    code, out, _ = run(capsys, *approvals, "show", r1)
    line = next(line for line in out.splitlines() if line.startswith("deputy "))
    assert "lead" in line.split() and "for lead" in line
    behalf = ("approve", r2, "--as", "deputy", "--on-behalf-of", "lead-2", "--json")
    code, out, _ = run(capsys, *approvals, *behalf)
    assert code == 0 and json.loads(out)["votes"][0]["on_behalf_of"] == "lead-2"
    reject = ("reject", r3, "--as", "deputy", "--on-behalf-of", "lead", "--reason", "no")
    code, out, _ = run(capsys, *approvals, *reject)
    assert code == 0 and out == f"rejected {r3} as deputy on behalf of lead\n"
    stored = load(db_url, r3)
    assert stored.status.value == "rejected" and stored.approved_by == "deputy"
    assert stored.votes[0].on_behalf_of == "lead"
    code, _, err = run(capsys, *approvals, "approve", r4, "--as", "deputy", "--on-behalf-of", "x")
    assert code == 5 and "not authorized" in err

    code, out, _ = run(capsys, *base, "revoke", "lead", "--to", "deputy")
    assert code == 0 and out == "revoked deputy's delegation from lead\n"
    code, _, err = run(
        capsys, *approvals, "approve", r4, "--as", "deputy", "--on-behalf-of", "lead"
    )
    assert code == 5 and "deputy" in err
    code, out, _ = run(capsys, *approvals, "approve", r4, "--as", "deputy", "--json")
    assert code == 0 and json.loads(out)["votes"][0]["on_behalf_of"] == "lead-2"  # still held
    code, out, _ = run(capsys, *base, "revoke", "lead-2", "--to", "deputy", "--as", "ops", "--json")
    assert code == 0 and json.loads(out) == {"approver_id": "lead-2", "delegate_id": "deputy"}
    code, _, err = run(capsys, *approvals, "approve", r5, "--as", "deputy")
    assert code == 5 and err.count("\n") == 1
    assert load(db_url, r5).votes == []
    code, _, err = run(capsys, *base, "revoke", "lead", "--to", "deputy")
    assert code == 3 and "'deputy' holds no delegation from 'lead'" in err
    code, out, _ = run(capsys, *base, "list")
    assert code == 0 and "no active delegations" in out
    assert load(db_url, r1).votes[0].on_behalf_of == "lead"  # votes cast stay


def test_a_delegation_ends_at_until(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = seed_requests(db_url, "agent-u", ["lead"], 2)
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    code, _, err = run(
        capsys,
        "--db",
        db_url,
        "delegations",
        "add",
        "lead",
        "--to",
        "deputy",
        "--until",
        until.astimezone(timezone(timedelta(hours=-5))).isoformat(),
    )
    assert code == 0, err
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", first, "--as", "deputy")
    assert code == 0 and "on behalf of lead" in out
    time.sleep(max(0.0, (until - datetime.now(UTC)).total_seconds()) + 0.2)
    code, _, _ = run(capsys, "--db", db_url, "approvals", "approve", second, "--as", "deputy")
    assert code == 5
    code, out, _ = run(capsys, "--db", db_url, "delegations", "list", "--json")
    assert json.loads(out) == []


def test_bad_delegations_are_refused(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    seed_requests(db_url, "agent-b", ["lead"], 1)  # the database exists
    add = ("--db", db_url, "delegations", "add", "lead", "--to")
    for argv, message in (
        (("deputy", "--until", "2030-01-01T00:00:00"), "has no timezone"),
        (("deputy", "--until", "next week"), "expected an ISO-8601 datetime with a timezone"),
        (("deputy", "--until", "2020-01-01T00:00:00+00:00"), "not in the future"),
        (("deputy", "--until", "9999-12-31T23:59:59-23:00"), "is out of range"),
        (("lead",), "cannot delegate to themselves"),
        ((" deputy",), "whitespace"),
        (("deputy", "--as", ""), "actor must be a non-empty string"),
    ):
        code, out, err = run(capsys, *add, *argv)
        assert (code, out) == (7, ""), (argv, err)
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        run(capsys, "--db", db_url, "delegations", "add", "lead")  # --to is required
    assert exc.value.code == 2
    code, out, _ = run(capsys, "--db", db_url, "delegations", "list", "--json")
    assert json.loads(out) == []


def test_parse_until() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_until("2026-01-01T01:00:00+01:00", now=now + timedelta(minutes=-1)) == now
    assert parse_until(" 2026-06-01T00:00:00Z ", now=now) == datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not in the future"):
        parse_until("2026-01-01T00:00:00Z", now=now)
