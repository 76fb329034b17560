"""``kaizen policies``: stored policies route requests made by any process, audited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_support import load, request_elsewhere, run, usage_error

from kaizen import service
from kaizen.governance import ApprovalConfigurationError, ApprovalLevel, ApprovalRequirement


def _policy(db_url: str, capsys: pytest.CaptureFixture[str], agent: str) -> dict[str, object]:
    code, out, err = run(capsys, "--db", db_url, "policies", "show", agent, "--json")
    assert code == 0, err
    shown: dict[str, object] = json.loads(out)
    return shown


def test_a_stored_policy_routes_requests_of_another_process(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        *("--db", db_url, "policies", "set", "agent-p", "--approvers", "lead, lead-2,lead"),
        *("--quorum", "2", "--timeout", "600", "--escalate-to", "boss", "--reason", "prod"),
        *("--as", "alice"),
    )
    assert code == 0, err
    assert "agent-p" in out and '["lead","lead-2"]' in out and "prod" in out
    shown = _policy(db_url, capsys, "agent-p")
    assert shown["custom_approvers"] == ["lead", "lead-2"] and shown["quorum"] == 2
    assert shown["escalate_to"] == ["boss"] and shown["approval_timeout_seconds"] == 600

    first = request_elsewhere(db_url, "agent-p")
    request = load(db_url, first)
    assert request.approvers == ["lead", "lead-2"] and request.quorum == 2
    assert request.escalate_to == ["boss"] and request.timeout_seconds == 600
    assert request.approval_reason == "prod"
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", first, "--as", "lead")
    assert code == 0 and "recorded vote: 1 of 2 approvals" in out and "still pending" in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", first, "--as", "lead-2")
    assert code == 0 and f"approved {first} as lead-2 (2 of 2 approvals)" in out

    code, out, _ = run(capsys, "--db", db_url, "policies", "list")
    assert code == 0 and "AGENT" in out and "agent-p" in out and '["boss"]' in out
    set_again = ("policies", "set", "agent-p", "--approvers", "lead,lead-2", "--as", "bob")
    code, out, err = run(capsys, "--db", db_url, *set_again, "--json")
    assert code == 0, err
    assert json.loads(out)["quorum"] == 1 and json.loads(out)["escalate_to"] is None
    code, out, _ = run(capsys, "--db", db_url, "policies", "list", "--json")
    assert [(p["agent"], p["quorum"]) for p in json.loads(out)] == [("agent-p", 1)]

    second = request_elsewhere(db_url, "agent-p")
    assert load(db_url, second).quorum == 1 and load(db_url, second).escalate_to == []
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", second, "--as", "lead")
    assert code == 0 and f"approved {second} as lead (1 of 1 approvals)" in out
    assert load(db_url, first).quorum == 2  # a request keeps the policy it was made under


def test_show_has_the_audit_history_and_delete_is_audited(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("--db", db_url, "policies")
    assert run(capsys, *base, "set", "agent-h", "--approvers", "a,b", "--quorum", "2")[0] == 0
    args = ("set", "agent-h", "--approvers", "a,b", "--as", "bob", "--timeout", "60")
    assert run(capsys, *base, *args)[0] == 0
    code, out, _ = run(capsys, *base, "show", "agent-h", "--wide")  # the changes in full
    assert code == 0 and "history:" in out and "SEQ" in out and "CHANGES" in out
    lines = out.splitlines()
    created = next(line for line in lines if line.startswith("0 "))
    changed = next(line for line in lines if line.startswith("1 "))
    assert "operator" in created and "created" in created  # the default actor
    assert "bob" in changed and "quorum: 2 -> 1" in changed
    assert "approval_timeout_seconds: 3600.0 -> 60.0" in changed
    history = _policy(db_url, capsys, "agent-h")["history"]
    assert isinstance(history, list)
    assert [(e["event"], e["actor"]) for e in history] == [
        ("policy_set", "operator"),
        ("policy_set", "bob"),
    ]
    assert history[0]["details"]["before"] is None
    assert history[1]["details"]["before"]["quorum"] == 2
    assert history[1]["details"]["after"]["quorum"] == 1

    code, out, _ = run(capsys, *base, "delete", "agent-h", "--as", "carol")
    assert code == 0 and "deleted the stored policy of agent-h" in out
    code, _, err = run(capsys, *base, "show", "agent-h")
    assert code == 3 and "no stored policy for agent 'agent-h'" in err
    code, _, err = run(capsys, *base, "delete", "agent-h", "--json")
    assert code == 3 and "agent-h" in err and err.count("\n") == 1
    code, out, _ = run(capsys, *base, "list")
    assert code == 0 and "no stored policies" in out
    assert run(capsys, *base, "set", "agent-j", "--approvers", "a")[0] == 0
    code, out, _ = run(capsys, *base, "delete", "agent-j", "--json")
    assert code == 0 and json.loads(out) == {"agent": "agent-j", "deleted": True}

    async def after_delete() -> None:
        async with service.Kaizen.open(db_url) as k:
            trail = await k.approvals.policy_history("agent-h")
            assert [(e.event, e.actor) for e in trail][-1] == ("policy_deleted", "carol")
            assert trail[-1].details["before"]["quorum"] == 1
            with pytest.raises(ApprovalConfigurationError):  # no longer routed
                await k.approvals.request_approval("agent-h", "user-1", {})

    asyncio.run(after_delete())


def test_bad_policies_are_refused_and_nothing_is_stored(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("--db", db_url, "policies")
    assert run(capsys, *base, "set", "agent-ok", "--approvers", "a,b", "--quorum", "2")[0] == 0
    for argv in (
        ("--approvers", "a", "--quorum", "x"),
        ("--approvers", "a", "--quorum", "1.5"),
        ("--approvers", "a", "--timeout", "soon"),
        ("--quorum", "1"),  # --approvers is required
    ):
        err = usage_error(capsys, *base, "set", "agent-bad", *argv)
        assert "usage: kaizen policies set" in err
    for argv, message in (
        (("--approvers", ""), "--approvers names no user id"),
        (("--approvers", " , "), "--approvers names no user id"),
        (("--approvers", "a,b", "--quorum", "3"), "quorum 3 is more than the 2 approvers"),
        (("--approvers", "a,a", "--quorum", "2"), "quorum 2 is more than the 1 approvers"),
        (("--approvers", "a", "--quorum", "0"), "quorum must be a whole number from 1 to 100"),
        (("--approvers", "a", "--timeout", "0"), "approval_timeout_seconds must be a positive"),
        (("--approvers", "a", "--timeout", "-5"), "approval_timeout_seconds must be a positive"),
        (("--approvers", "a", "--timeout", "nan"), "approval_timeout_seconds must be a positive"),
        (("--approvers", "a", "--escalate-to", ","), "--escalate-to names no user id"),
    ):
        code, out, err = run(capsys, *base, "set", "agent-bad", *argv)
        assert (code, out) == (7, ""), (argv, err)
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = run(capsys, *base, "set", " agent", "--approvers", "a")
    assert code == 7 and "whitespace" in err
    code, _, err = run(capsys, *base, "set", "agent-bad", "--approvers", "a", "--as", "")
    assert code == 7 and "actor" in err
    code, _, err = run(capsys, *base, "show", "agent-bad")
    assert code == 3 and "agent-bad" in err
    code, out, _ = run(capsys, *base, "list", "--json")
    assert [p["agent"] for p in json.loads(out)] == ["agent-ok"]
    assert _policy(db_url, capsys, "agent-ok")["quorum"] == 2  # left as it was


def test_set_creates_the_sqlite_database_and_reads_do_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.db"
    url = f"sqlite:///{path}"
    for argv in (("list",), ("show", "agent-x")):
        code, _, err = run(capsys, "--db", url, "policies", *argv)
        assert code == 6 and f"no database at {path}" in err
    assert not path.exists()
    code, _, _ = run(capsys, "--db", url, "policies", "set", "agent-x", "--approvers", "lead")
    assert code == 0 and path.exists()
    code, out, _ = run(capsys, "policies", "list", "--db", url)
    assert code == 0 and "agent-x" in out


def test_set_keeps_what_it_cannot_express(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    async def store() -> None:
        async with service.Kaizen.open(db_url) as k:
            requirement = ApprovalRequirement(
                ApprovalLevel.CUSTOM,
                custom_approvers=["lead"],
                excluded_approvers=["agent-dev"],
                require_for_environments=["prod"],
            )
            await k.approvals.save_policy("agent-x", requirement)

    asyncio.run(store())
    code, _, _ = run(capsys, "--db", db_url, "policies", "set", "agent-x", "--approvers", "a,b")
    assert code == 0
    shown = _policy(db_url, capsys, "agent-x")
    assert shown["custom_approvers"] == ["a", "b"]
    assert shown["excluded_approvers"] == ["agent-dev"]
    assert shown["require_for_environments"] == ["prod"]
