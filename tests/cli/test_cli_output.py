"""Text output: every line fits 100 columns (``--wide``: nothing cut), values read as
people read them (yes/no, JSON, UTC times), and ``--json`` on every data command."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from cli_support import run

from kaizen import service
from kaizen.cli import _leaf_parsers, build_parser
from kaizen.cli._output import WIDTH, cell, fit
from kaizen.governance import ApprovalStatus, ExternalAgentApprovalRequest

LONG = "x" * 150
REQUEST = f"req-{LONG}"
AGENT = f"agent-{LONG}"
USER = f"user-{LONG}"
APPROVER = f"lead-{LONG}"
#: Commands whose output is a log or a walkthrough, not data.
NOT_DATA = ("kaizen serve", "kaizen mcp", "kaizen maintain", "kaizen demo")
_MOMENT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?Z")


def _seed(url: str) -> None:
    async def go() -> None:
        async with service.Kaizen.open(url) as k:
            now = datetime.now(UTC)
            request = ExternalAgentApprovalRequest(
                id=REQUEST,
                external_agent_id=AGENT,
                requested_by=USER,
                approvers=[APPROVER, "lead-2"],
                status=ApprovalStatus.PENDING,
                approval_reason="a reason " * 30,
                request_metadata={"environment": "production", "notes": LONG, "dry": False},
                created_at=now,
                deadline_at=now + timedelta(hours=1),
                quorum=2,
            )
            await k.approval_storage.save(request)
            await service.approve(k, REQUEST, APPROVER, comment="looks fine " * 20)
            await k.sessions.create_session_async(user_id=USER)
            await service.set_policy(k, AGENT, approvers=[APPROVER, USER], reason=LONG)
            await service.delegate(k, APPROVER, USER, actor=USER)

    asyncio.run(go())


COMMANDS = [
    ("approvals", "list"),
    ("approvals", "show", REQUEST),
    ("approvals", "audit", "show", REQUEST),
    ("sessions", "list"),
    ("policies", "list"),
    ("policies", "show", AGENT),
    ("delegations", "list"),
]


def test_every_line_fits_100_columns_and_wide_cuts_nothing(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(db_url)
    for argv in COMMANDS:
        code, out, _ = run(capsys, "--db", db_url, *argv)
        assert code == 0, argv
        too_long = [line for line in out.splitlines() if len(line) > WIDTH]
        assert not too_long, (argv, too_long)
        assert "…" in out, argv  # something had to be cut
        code, wide, _ = run(capsys, "--db", db_url, *argv, "--wide")
        assert code == 0 and "…" not in wide, argv
        assert max(len(line) for line in wide.splitlines()) > WIDTH
    _, out, _ = run(capsys, "--db", db_url, "approvals", "list", "--wide")
    assert REQUEST in out and AGENT in out and APPROVER in out  # with the --wide columns


def test_values_read_as_people_read_them(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    _seed(db_url)
    _, out, _ = run(capsys, "--db", db_url, "approvals", "show", REQUEST, "--wide")
    fields, _ = out.split("votes:\n", 1)
    lines = dict(line.split(None, 1) for line in fields.splitlines())
    assert json.loads(lines["request_metadata"])["dry"] is False  # JSON, not a Python repr
    assert "'" not in lines["approvers"] and json.loads(lines["approvers"])[1] == "lead-2"
    assert _MOMENT.fullmatch(lines["created_at"]) and "+00:00" not in out
    assert lines["approved_at"] == "-" and lines["progress"] == "1 of 2 approvals"
    _, out, _ = run(capsys, "--db", db_url, "sessions", "list")
    row = out.splitlines()[1].split()
    assert row[-1] == "no"  # expired: no, not False
    assert _MOMENT.fullmatch(" ".join(row[-5:-3])) and _MOMENT.fullmatch(" ".join(row[-3:-1]))


def test_every_data_command_has_json_and_wide() -> None:
    for leaf in _leaf_parsers(build_parser()):
        if leaf.prog.startswith(NOT_DATA):
            continue
        options = {o for action in leaf._actions for o in action.option_strings}
        assert {"--json", "--wide"} <= options, leaf.prog


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (True, "yes"),
        (False, "no"),
        ({"a": [1, None, True]}, '{"a":[1,null,true]}'),
        ([datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)], '["2026-01-02T03:04:05+00:00"]'),
        (datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC), "2026-01-02 03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=UTC).astimezone(), "2026-01-02 05:04:05Z"),
        (ApprovalStatus.PENDING, "pending"),
        ("two\nlines\ttab", "two\\nlines\\ttab"),
        (3600.0, "3600.0"),
    ],
)
def test_cell(value: object, text: str) -> None:
    assert cell(value) == text


def test_fit_shrinks_the_widest_column_first_down_to_its_floors() -> None:
    assert fit([10, 50, 30], [[10, 8, 8]], 60) == [10, 25, 25]
    assert fit([10, 50, 30], [[10, 40, 30], [4, 4, 4]], 60) == [10, 25, 25]
    assert fit([10, 50, 30], [[10, 40, 30]], 60) == [10, 40, 30]  # as far as the floors go
    assert fit([5, 5], [[1, 1]], 20) == [5, 5]  # fits already
