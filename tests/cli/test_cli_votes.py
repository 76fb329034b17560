"""``kaizen approvals``: votes toward a quorum, edit-and-approve, escalation, sweeps."""

from __future__ import annotations

import json
import time

import pytest
from cli_support import load, run, seed_requests


def _shown(db_url: str, capsys: pytest.CaptureFixture[str], request_id: str) -> dict[str, object]:
    code, out, err = run(capsys, "--db", db_url, "approvals", "show", request_id, "--json")
    assert code == 0, err
    shown: dict[str, object] = json.loads(out)
    return shown


def test_votes_count_toward_the_quorum_and_show_lists_them(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (rid,) = seed_requests(db_url, "agent-q", ["lead", "lead-2", "lead-3"], 1, quorum=2)
    approve = ("--db", db_url, "approvals", "approve", rid)
    code, out, err = run(capsys, *approve, "--as", "lead", "--comment", "fine by me")
    assert code == 0, err
    assert out == f"recorded vote: 1 of 2 approvals; {rid} is still pending (voted as lead)\n"
    code, out, _ = run(capsys, "--db", db_url, "approvals", "show", rid)
    assert code == 0 and "1 of 2 approvals" in out and "votes:" in out
    vote_line = next(line for line in out.splitlines() if line.startswith("lead "))
    assert "approve" in vote_line and "fine by me" in vote_line
    assert "approved_metadata" not in out and "METADATA" not in out  # not set yet
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list")
    assert "PROGRESS" in out and "1 of 2" in out and "ESCALATIONS" not in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--wide")
    assert "ESCALATIONS" in out and "APPROVERS" in out  # the --wide columns
    shown = _shown(db_url, capsys, rid)
    assert shown["status"] == "pending"
    progress = shown["progress"]
    assert isinstance(progress, dict)
    assert (progress["approvals"], progress["quorum"], progress["text"]) == (1, 2, "1 of 2")
    assert shown["eligible"] == ["lead-2", "lead-3"] and shown["approved_metadata"] is None
    (vote,) = shown["votes"]  # type: ignore[misc]
    assert vote["approver_id"] == "lead" and vote["decision"] == "approve"
    assert vote["comment"] == "fine by me" and vote["on_behalf_of"] is None and vote["at"]
    code, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--json")
    assert json.loads(out)["items"][0]["votes"] == shown["votes"]

    code, _, err = run(capsys, *approve, "--as", "lead")
    assert code == 4 and "already voted" in err and err.count("\n") == 1
    code, _, err = run(capsys, *approve, "--as", "stranger", "--comment", "hi")
    assert code == 5 and "stranger" in err
    code, out, _ = run(capsys, *approve, "--as", "lead-2", "--json")
    assert code == 0 and json.loads(out)["status"] == "approved"
    assert json.loads(out)["approved_by"] == "lead-2"
    code, _, err = run(capsys, *approve, "--as", "lead-3")
    assert code == 4 and "already decided: approved" in err


def test_approve_with_edited_metadata(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    (rid,) = seed_requests(db_url, "agent-e", ["lead", "lead-2", "lead-3"], 1, quorum=2)
    approve = ("--db", db_url, "approvals", "approve", rid)
    for text, message in (
        ("{bad", "--metadata is not valid JSON"),
        ('{"cost": NaN}', "--metadata is not valid JSON: NaN is not JSON"),
        ("[1, 2]", "--metadata must be a JSON object ({...}), got an array"),
        ('"cost"', "got a string"),
        ("3", "got a number"),
        ("null", "got null"),
    ):
        code, out, err = run(capsys, *approve, "--as", "lead", "--metadata", text)
        assert (code, out) == (7, ""), (text, err)
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert load(db_url, rid).votes == []  # nothing recorded
    edited = '{"cost": 3, "i": 0, "region": "eu"}'
    code, out, err = run(capsys, *approve, "--as", "lead", "--metadata", edited)
    assert code == 0 and "recorded vote: 1 of 2 approvals" in out, err
    code, out, _ = run(capsys, *approve, "--as", "lead-2")  # the unedited version
    assert code == 0 and "recorded vote: 1 of 2 approvals" in out  # per version
    code, out, _ = run(capsys, *approve, "--as", "lead-3", "--metadata", edited, "--comment", "ok")
    assert code == 0
    assert out == f"approved {rid} as lead-3 (2 of 2 approvals, with edited metadata)\n"
    stored = load(db_url, rid)
    assert stored.approved_metadata == {"cost": 3, "i": 0, "region": "eu"}
    assert stored.request_metadata == {"cost": 5, "i": 0}  # the request's own stays
    assert [v.metadata is not None for v in stored.votes] == [True, False, True]
    code, out, _ = run(capsys, "--db", db_url, "approvals", "show", rid)
    assert code == 0 and "METADATA" in out
    line = next(line for line in out.splitlines() if line.startswith("approved_metadata"))
    assert '"region":"eu"' in line
    assert _shown(db_url, capsys, rid)["approved_metadata"] == stored.approved_metadata


def test_reject_is_a_veto(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = seed_requests(db_url, "agent-r", ["lead", "lead-2"], 2, quorum=2)
    base = ("--db", db_url, "approvals")
    assert run(capsys, *base, "approve", first, "--as", "lead")[0] == 0
    code, out, _ = run(capsys, *base, "reject", first, "--as", "lead-2", "--reason", "too risky")
    assert code == 0 and out == f"rejected {first} as lead-2\n"
    stored = load(db_url, first)
    assert stored.status.value == "rejected" and stored.rejection_reason == "too risky"
    assert [(v.approver_id, v.decision) for v in stored.votes] == [
        ("lead", "approve"),
        ("lead-2", "reject"),
    ]
    code, out, _ = run(capsys, *base, "show", first)
    assert "reject" in next(line for line in out.splitlines() if line.startswith("lead-2 "))
    code, _, err = run(capsys, *base, "reject", first, "--as", "lead", "--reason", "no")
    assert code == 4 and "already" in err
    code, out, _ = run(capsys, *base, "reject", second, "--as", "lead", "--reason", "no", "--json")
    assert code == 0 and json.loads(out)["status"] == "rejected"
    assert json.loads(out)["votes"][0]["comment"] == "no"
    code, _, err = run(capsys, *base, "reject", second, "--as", "lead-2", "--reason", "x")
    assert code == 4


def test_sweep_and_maintain_count_escalations(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (rid,) = seed_requests(
        db_url, "agent-s", ["lead"], 1, timeout_seconds=1.0, escalate_to=["boss", "lead"]
    )
    time.sleep(1.1)
    code, out, _ = run(capsys, "--db", db_url, "approvals", "sweep", "--json")
    assert code == 0 and json.loads(out) == {"timed_out": 0, "escalated": 1}
    shown = _shown(db_url, capsys, rid)
    assert shown["status"] == "pending" and shown["escalations"] == 1
    assert shown["approvers"] == ["lead", "boss"] and shown["escalate_to"] == ["boss", "lead"]
    code, out, _ = run(capsys, "--db", db_url, "approvals", "show", rid)
    assert any(line.split() == ["escalations", "1"] for line in out.splitlines())
    assert '["boss","lead"]' in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", rid, "--as", "boss")
    assert code == 0 and f"approved {rid} as boss (1 of 1 approvals)" in out  # the fresh deadline

    later = seed_requests(db_url, "agent-s", ["lead"], 2, timeout_seconds=0.05, escalate_to=["x"])
    time.sleep(0.2)
    code, out, _ = run(capsys, "--db", db_url, "approvals", "sweep")
    assert code == 0 and out == "escalated 2, timed out 0 request(s)\n"
    time.sleep(0.2)  # the escalated requests' fresh deadlines pass too
    code, _, err = run(capsys, "--db", db_url, "maintain", "--every", "0.01", "--passes", "1")
    assert code == 0
    assert "pass 1: timed out 2 approval(s), escalated 0 approval(s), deleted 0 session(s)" in err
    assert [load(db_url, r).status.value for r in later] == ["timeout", "timeout"]
    seed_requests(db_url, "agent-s", ["lead"], 1, timeout_seconds=0.05, escalate_to=["x"])
    time.sleep(0.2)
    code, _, err = run(capsys, "--db", db_url, "maintain", "--every", "0.01", "--passes", "1")
    assert "pass 1: timed out 0 approval(s), escalated 1 approval(s)" in err
