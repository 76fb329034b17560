"""``kaizen approvals request``: a request from the command line, routed by the agent's
stored policy or to the approvers given for it alone; bad input writes nothing (exit 7)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_support import load, run, usage_error

from dataflow.errors import ValidationError
from kaizen import service


def _count(db_url: str) -> int:
    async def go() -> int:
        async with service.Kaizen.open(db_url) as k:
            return len((await service.list_approvals(k, limit=1000))["items"])

    return asyncio.run(go())


def test_request_with_approvers_decides_this_request_only(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        *("--db", db_url, "approvals", "request", "--agent", "deployer", "--by", "dev-1"),
        *("--approver", "ana", "--approver", "bo,cy", "--approver", "ana", "--quorum", "2"),
        *("--metadata", '{"env": "prod", "replicas": 4}', "--timeout", "600"),
    )
    assert code == 0, err
    assert out.startswith("requested approval ") and "for deployer by dev-1: pending" in out
    assert "needs 2 approval(s) of ana, bo, cy" in out
    request_id = out.split()[2]
    request = load(db_url, request_id)
    assert (request.external_agent_id, request.requested_by) == ("deployer", "dev-1")
    assert request.approvers == ["ana", "bo", "cy"] and request.quorum == 2
    assert request.request_metadata == {"env": "prod", "replicas": 4}
    assert request.timeout_seconds == 600
    assert request.status.value == "pending"

    # Those approvers were for that request only: none is stored for the agent.
    code, _, err = run(
        capsys, "--db", db_url, "approvals", "request", "--agent", "deployer", "--by", "dev-1"
    )
    assert code == 7 and "no stored policy" in err and "kaizen policies set deployer" in err
    assert _count(db_url) == 1
    code, _, _ = run(capsys, "--db", db_url, "policies", "show", "deployer")
    assert code == 3

    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", request_id, "--as", "ana")
    assert code == 0 and "1 of 2 approvals" in out
    code, out, _ = run(capsys, "--db", db_url, "approvals", "approve", request_id, "--as", "cy")
    assert code == 0 and f"approved {request_id} as cy" in out


def test_request_without_approvers_routes_by_the_stored_policy(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = ("policies", "set", "billing", "--approvers", "ana,bo", "--quorum", "2")
    code, _, err = run(capsys, "--db", db_url, *policy, "--timeout", "90", "--reason", "money")
    assert code == 0, err
    code, out, err = run(
        capsys,
        *("--db", db_url, "approvals", "request", "--agent", "billing", "--by", "dev-2"),
        *("--metadata", '{"cost": 90}', "--json"),
    )
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] == "pending" and shown["progress"]["text"] == "0 of 2"
    assert shown["approvers"] == ["ana", "bo"] and shown["timeout_seconds"] == 90
    assert shown["approval_reason"] == "money" and shown["request_metadata"] == {"cost": 90}
    assert load(db_url, shown["id"]).requested_by == "dev-2"
    # Given approvers win over the stored policy, for this request.
    code, out, err = run(
        capsys,
        *("--db", db_url, "approvals", "request", "--agent", "billing", "--by", "dev-2"),
        *("--approver", "cy", "--json"),
    )
    assert code == 0, err
    assert json.loads(out)["approvers"] == ["cy"] and json.loads(out)["quorum"] == 1


BAD_INPUT = [
    (["--approver", "ana", "--metadata", "{nope"], "--metadata is not valid JSON"),
    (["--approver", "ana", "--metadata", "[1, 2]"], "must be a JSON object"),
    (["--approver", "ana", "--metadata", '{"x": NaN}'], "not valid JSON"),
    (["--approver", "ana", "--quorum", "2"], "needs 2 approvals but only 1"),
    (["--approver", "ana", "--quorum", "0"], "quorum must be a whole number"),
    (["--approver", "ana", "--timeout", "0"], "must be a positive number"),
    (["--approver", "ana", "--timeout", "inf"], "at most"),
    (["--approver", " , "], "--approver names no user id"),
    (["--approver", "dev-1"], "requester 'dev-1', who may not decide their own request"),
    (["--approver", "ana", "--by", "dev-1 "], "requested_by must not start or end"),
    (["--approver", "ana", "--agent", ""], "external_agent_id"),
    (["--quorum", "1"], "--quorum and --timeout go with --approver"),
    (["--timeout", "60"], "--quorum and --timeout go with --approver"),
]


def test_bad_input_is_exit_7_and_writes_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--db", db_url, "approvals", "request", "--agent", "agent-x", "--by", "dev-1"]
    for extra, message in BAD_INPUT:
        code, out, err = run(capsys, *base, *extra)
        assert (code, out) == (7, "") and message in err, (extra, err)
        assert err.count("\n") == 1 and "Traceback" not in err
    assert _count(db_url) == 0


def test_bad_input_creates_no_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    request = ("--db", url, "approvals", "request", "--agent", "a", "--by", "dev-1")
    code, _, err = run(capsys, *request, "--approver", "ana", "--quorum", "3")
    assert code == 7 and not (tmp_path / "new.db").exists()
    # Routing by a stored policy reads a database: a missing one is not created either.
    code, _, err = run(capsys, *request)
    assert code != 0 and "no database at" in err and not (tmp_path / "new.db").exists()
    code, _, err = run(capsys, *request, "--approver", "ana")
    assert code == 0 and (tmp_path / "new.db").exists(), err


def test_request_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--agent" in usage_error(capsys, "approvals", "request", "--by", "u")
    assert "--by" in usage_error(capsys, "approvals", "request", "--agent", "a")
    err = usage_error(capsys, "approvals", "request", "--agent", "a", "--by", "u", "--quorum", "x")
    assert "invalid int value" in err


async def test_the_service_leaves_the_shared_manager_as_it_was(db_url: str) -> None:
    async with service.Kaizen.open(db_url) as k:
        made = await service.request_approval(k, "agent-s", "dev-1", approvers=["ana"])
        assert made["approvers"] == ["ana"] and made["status"] == "pending"
        assert k.approvals.requirements == {}  # nothing routes the agent's next request
        with pytest.raises(ValidationError, match="no stored policy"):
            await service.request_approval(k, "agent-s", "dev-1")
        with pytest.raises(ValidationError, match="a quorum or timeout goes with approvers"):
            await service.request_approval(k, "agent-s", "dev-1", quorum=2)
        with pytest.raises(ValidationError, match="non-empty list"):
            await service.request_approval(k, "agent-s", "dev-1", approvers=[])
        assert len((await service.list_approvals(k))["items"]) == 1
