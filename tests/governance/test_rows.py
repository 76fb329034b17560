"""The row conversions of the approval storage: each column lands in its own field."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kaizen.governance._schema import request_from_row, request_row, vote_from_row, vote_row
from kaizen.governance.audit import make_event
from kaizen.governance.models import ApprovalStatus, ExternalAgentApprovalRequest, Vote

T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "req-1",
        "external_agent_id": "agent-1",
        "requested_by": "alice",
        "approvers_json": ["bob", "carol"],
        "status": "approved",
        "approval_reason": "why",
        "request_metadata_json": {"cost": 5.0},
        "approved_at": T0 + timedelta(hours=1),
        "approved_by": "bob",
        "rejection_reason": "not this",
        "deadline_at": T0 + timedelta(hours=2),
        "audit_seq": 7,
        "audit_head": "h" * 64,
        "quorum": 2,
        "policy_json": {
            "escalate_to": ["dave"],
            "timeout_seconds": 90.5,
            "excluded_approvers": ["eve"],
        },
        "escalations": 3,
        "approved_metadata_json": {"cost": 4.0},
        "created_at": T0,
        "updated_at": T0 + timedelta(hours=3),
    }
    row.update(changes)
    return row


def test_every_column_lands_in_its_field() -> None:
    vote = Vote("bob", "approve", T0)
    row = _row()
    request = request_from_row(row, [vote])
    assert dataclasses.asdict(request) == {
        "id": "req-1",
        "external_agent_id": "agent-1",
        "requested_by": "alice",
        "approvers": ["bob", "carol"],
        "status": ApprovalStatus.APPROVED,
        "approval_reason": "why",
        "request_metadata": {"cost": 5.0},
        "created_at": T0,
        "approved_at": T0 + timedelta(hours=1),
        "approved_by": "bob",
        "rejection_reason": "not this",
        "deadline_at": T0 + timedelta(hours=2),
        "quorum": 2,
        "escalate_to": ["dave"],
        "escalations": 3,
        "timeout_seconds": 90.5,
        "excluded_approvers": ["eve"],
        "approved_metadata": {"cost": 4.0},
        "votes": [dataclasses.asdict(vote)],
        "audit_seq": 7,
        "audit_head": "h" * 64,
    }
    # The request shares no list or dict with the row.
    request.approvers.append("x")
    request.request_metadata["y"] = 1
    request.escalate_to.append("x")
    request.excluded_approvers.append("x")
    assert row == _row()


def test_round_trip_through_request_row() -> None:
    request = request_from_row(_row())
    stored = {**request_row(request), "id": request.id, "created_at": request.created_at}
    stored |= {"audit_seq": request.audit_seq, "audit_head": request.audit_head}
    again = request_from_row(stored)
    assert again == request
    assert (again.audit_seq, again.audit_head) == (request.audit_seq, request.audit_head)


def test_columns_added_later_default_when_null_or_absent() -> None:
    nulls = {"quorum": None, "policy_json": None, "escalations": None}
    for row in (
        _row(**nulls, approved_metadata_json=None, approvers_json=None, request_metadata_json=None),
        {k: v for k, v in _row().items() if k not in {*nulls, "approved_metadata_json"}},
    ):
        request = request_from_row(row)
        assert (request.quorum, request.escalations) == (1, 0)
        assert request.escalate_to == [] and request.excluded_approvers == []
        assert request.timeout_seconds is None and request.approved_metadata is None
        assert request.votes == []
    empty = request_from_row(_row(**nulls, approvers_json=None, request_metadata_json=None))
    assert empty.approvers == [] and empty.request_metadata == {}
    partial = request_from_row(_row(policy_json={"timeout_seconds": 5}))
    assert partial.escalate_to == [] and partial.excluded_approvers == []
    assert partial.timeout_seconds == 5


def test_every_status_and_an_unknown_one() -> None:
    for status in ApprovalStatus:
        assert request_from_row(_row(status=status.value)).status is status
    with pytest.raises(ValueError, match="'odd' is not a valid ApprovalStatus"):
        request_from_row(_row(status="odd"))


def test_a_restored_request_is_an_ordinary_instance() -> None:
    request = request_from_row(_row())
    assert type(request) is ExternalAgentApprovalRequest
    request.validate()
    assert list(vars(request)) == [f.name for f in dataclasses.fields(request)]


def test_vote_round_trip() -> None:
    vote = Vote("dep", "approve", T0, comment="ok", on_behalf_of="bob", metadata={"cost": 1.0})
    event = make_event("req-1", 1, "voted", "dep", T0, {}, "0" * 64)
    back = vote_from_row(vote_row(event, vote))
    assert back == vote and type(back) is Vote
    assert back.counts_for == "bob"
    assert list(vars(back)) == [f.name for f in dataclasses.fields(back)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.decision = "reject"  # type: ignore[misc]
