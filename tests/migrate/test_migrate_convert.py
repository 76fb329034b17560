"""Reading one legacy row: every value a driver may hand back, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kaizen.governance import ApprovalStatus
from kaizen.migrate._convert import Unconvertible, to_request, to_session

T = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _request(**fields: Any) -> dict[str, Any]:
    row = {
        "id": "r1",
        "external_agent_id": "agent",
        "requested_by": "user",
        "approvers_json": '["lead"]',
        "created_at": T.isoformat(),
    }
    return row | fields


def _session(**fields: Any) -> dict[str, Any]:
    return {"id": "s1", "user_id": "u", "created_at": T.isoformat()} | fields


def test_values_a_driver_returns() -> None:
    tokyo = timezone(timedelta(hours=9))
    request = to_request(
        _request(
            approvers_json=b'["lead", "admin"]',  # a BLOB column
            request_metadata_json={"already": "decoded"},  # a JSON column
            status=None,  # the spec's default
            created_at=T.replace(tzinfo=None),  # a TIMESTAMP column: naive UTC
            approved_at=T.astimezone(tokyo),
            rejection_reason="   ",
        )
    )
    assert request.approvers == ["lead", "admin"]
    assert request.request_metadata == {"already": "decoded"}
    assert request.status is ApprovalStatus.PENDING
    assert request.created_at == T and request.created_at.tzinfo is UTC
    assert request.approved_at == T and request.approved_at.tzinfo is UTC
    assert request.rejection_reason is None
    assert to_request(_request(request_metadata_json="null")).request_metadata == {}


def test_created_at_falls_back_to_updated_at() -> None:
    later = T + timedelta(hours=1)
    assert to_request(_request(created_at="", updated_at=later.isoformat())).created_at == later
    with pytest.raises(Unconvertible, match="created_at is unset"):
        to_request(_request(created_at=None))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"approvers_json": b"\xff"}, "approvers_json is not UTF-8 text"),
        ({"approvers_json": '{"lead": 1}'}, "approvers_json is not a JSON array"),
        ({"approvers_json": 7}, "approvers_json is not a JSON array: 7"),
        ({"request_metadata_json": "[1]"}, "request_metadata_json is not a JSON object"),
        ({"request_metadata_json": '{"x": Infinity}'}, "Infinity is not JSON"),
        ({"approved_by": 12}, "approved_by is not text: 12"),
        ({"approved_at": 1700000000}, "approved_at is not a time: 1700000000"),
        ({"created_at": "yesterday"}, "created_at is not an ISO 8601 time: 'yesterday'"),
        ({"created_at": "x" * 100}, r"'xxxx.*\.\.\.$"),
        ({"status": "maybe"}, "unknown status 'maybe'"),
        ({"requested_by": ""}, "requested_by must be a non-empty string"),
        ({"id": " r1"}, "request id must not start or end with whitespace"),
    ],
)
def test_requests_that_cannot_be_converted(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unconvertible, match=reason):
        to_request(_request(**fields))


def test_session_times_fall_back() -> None:
    seen = T + timedelta(minutes=5)
    only_seen = to_session(_session(created_at=None, last_accessed=seen.isoformat()))
    assert only_seen.created_at == only_seen.last_accessed == seen
    updated = to_session(_session(created_at="", updated_at=seen.isoformat()))
    assert updated.created_at == updated.last_accessed == seen
    with pytest.raises(Unconvertible, match="created_at and last_accessed are unset"):
        to_session(_session(created_at=""))


@pytest.mark.parametrize(
    ("expires", "ttl"),
    [
        (T + timedelta(minutes=30, milliseconds=400), timedelta(minutes=30)),
        (T + timedelta(milliseconds=200), timedelta(hours=1)),  # under a second: the default
        (T - timedelta(days=1), timedelta(hours=1)),  # before last use: the default
        (T + timedelta(days=200 * 366), timedelta(hours=1)),  # beyond a century: the default
    ],
)
def test_session_ttl_from_its_times(expires: datetime, ttl: timedelta) -> None:
    session = to_session(_session(expires_at=expires.isoformat()))
    assert session.ttl == ttl and session.expires_at == expires


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"user_id": None}, "user_id must be a non-empty str"),
        ({"state_json": "[]"}, "state_json is not a JSON object"),
        ({"channel_activity_json": '{"api": 5}'}, r"channel_activity_json\['api'\] is not a time"),
        ({"memory_pool_id": " pool"}, "memory_pool_id must not start or end with whitespace"),
        ({"last_accessed": "9999-12-31T23:59:59+00:00"}, "past the year 9999"),
    ],
)
def test_sessions_that_cannot_be_converted(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unconvertible, match=reason):
        to_session(_session(**fields))
