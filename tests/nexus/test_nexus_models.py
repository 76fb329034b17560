"""CrossChannelSession: defaults, validation, refresh by its own TTL, copies."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dataflow import ValidationError
from kaizen.integrations.nexus import CrossChannelSession, SessionValidationError

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def deep(levels: int) -> dict[str, Any]:
    """A JSON object of ``levels + 1`` nested objects."""
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"d": value}
    return value


def test_public_import_needs_no_nexus_package() -> None:
    code = (
        "import sys\n"
        "from kaizen.integrations.nexus import NexusSessionManager, SessionStorage, "
        "CrossChannelSession\n"
        "assert 'nexus' not in sys.modules\n"
        "assert not any(m.split('.')[0] in ('asyncpg', 'asyncmy') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_derive_times_from_one_instant() -> None:
    session = CrossChannelSession(user_id="u", ttl=timedelta(minutes=30))
    assert session.created_at.tzinfo is UTC
    assert session.last_accessed == session.created_at
    assert session.expires_at == session.created_at + timedelta(minutes=30)
    assert session.state == {} and session.channel_activity == {}
    assert session.memory_pool_id is None
    assert session.session_id != CrossChannelSession(user_id="u").session_id


def test_times_are_converted_to_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    session = CrossChannelSession(user_id="u", created_at=T0.astimezone(tokyo))
    assert session.created_at == T0 and session.created_at.tzinfo is UTC
    assert session.expires_at == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"user_id": ""},
        {"user_id": None},
        {"user_id": "x" * 256},
        {"user_id": "u", "session_id": ""},
        {"user_id": "u", "ttl": timedelta(0)},
        {"user_id": "u", "ttl": timedelta(seconds=-5)},
        {"user_id": "u", "ttl": 3600},
        {"user_id": "u", "created_at": datetime(2030, 1, 1)},
        {"user_id": "u", "state": {"x": float("nan")}},
        {"user_id": "u", "state": {"x": object()}},
        {"user_id": "u", "state": {1: "int key"}},
        {"user_id": "u", "state": {"x": (1, 2)}},
        {"user_id": "u", "state": {"x": 2**64}},
        {"user_id": "u", "state": {"x": "nul\x00"}},
        {"user_id": "u", "state": {"x": "lone \ud800 surrogate"}},
        {"user_id": "u", "state": {"\udfff": 1}},
        {"user_id": "u", "state": {"x": 1e16}},
        {"user_id": "u", "state": {"x": -2.5e300}},
        {"user_id": "u\ud800"},
        {"user_id": "u", "state": ["not", "a", "dict"]},
        {"user_id": "u", "channel_activity": {"api": "yesterday"}},
        {"user_id": "u", "channel_activity": {"": T0}},
        {"user_id": "u", "channel_activity": [("api", T0)]},
        {"user_id": "u", "state": deep(31)},
        {"user_id": "u", "memory_pool_id": ""},
    ],
)
def test_invalid_sessions_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SessionValidationError):
        CrossChannelSession(**kwargs)


def test_validation_error_is_dataflow_and_value_error() -> None:
    with pytest.raises(ValidationError):
        CrossChannelSession(user_id="")
    with pytest.raises(ValueError, match="user_id"):
        CrossChannelSession(user_id="")


def test_deep_but_reasonable_state_is_accepted() -> None:
    assert CrossChannelSession(user_id="u", state=deep(30)).state == deep(30)


def test_negative_zero_is_stored_as_zero_everywhere() -> None:
    [value] = CrossChannelSession(user_id="u", state={"z": -0.0}).state.values()
    assert str(value) == "0.0"


def test_state_is_copied_on_construction() -> None:
    nested = {"list": [1, 2]}
    session = CrossChannelSession(user_id="u", state={"n": nested})
    nested["list"].append(3)
    assert session.state == {"n": {"list": [1, 2]}}


def test_refresh_extends_by_own_ttl_and_records_channel() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0, ttl=timedelta(hours=5))
    later = T0 + timedelta(hours=2)
    session.refresh("cli", now=later)
    assert session.last_accessed == later
    assert session.expires_at == later + timedelta(hours=5)
    assert session.channel_activity == {"cli": later}
    session.refresh(now=later + timedelta(hours=1))
    assert session.channel_activity == {"cli": later}


def test_is_expired_at_the_boundary() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0)
    assert not session.is_expired(T0 + timedelta(minutes=59, seconds=59))
    assert session.is_expired(T0 + timedelta(hours=1))
    assert not CrossChannelSession(user_id="u").is_expired()


def test_is_expired_agrees_across_offsets() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0)
    probe = T0 + timedelta(minutes=30)
    for hours in (-8, 0, 9):
        assert not session.is_expired(probe.astimezone(timezone(timedelta(hours=hours))))


def test_update_state_merges_shallowly_and_refreshes() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0, state={"a": {"x": 1}, "b": 2})
    when = T0 + timedelta(minutes=10)
    session.update_state({"a": {"y": 2}, "c": None}, channel="api", now=when)
    assert session.state == {"a": {"y": 2}, "b": 2, "c": None}
    assert session.channel_activity == {"api": when}
    assert session.expires_at == when + timedelta(hours=1)


def test_bad_update_changes_nothing() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0, state={"a": 1})
    before = (dict(session.state), session.last_accessed, session.expires_at)
    with pytest.raises(SessionValidationError):
        session.update_state({"a": 2, "bad": float("inf")}, channel="api")
    with pytest.raises(SessionValidationError):
        session.update_state({"a": 2}, channel="")
    assert (session.state, session.last_accessed, session.expires_at) == before
    assert session.channel_activity == {}


def test_get_state_returns_a_deep_copy_and_refreshes() -> None:
    session = CrossChannelSession(user_id="u", created_at=T0, state={"n": {"list": [1]}})
    when = T0 + timedelta(minutes=5)
    copy = session.get_state("mcp", now=when)
    copy["n"]["list"].append(2)
    copy["new"] = True
    assert session.state == {"n": {"list": [1]}}
    assert session.channel_activity == {"mcp": when}


def test_naive_now_is_refused() -> None:
    session = CrossChannelSession(user_id="u")
    with pytest.raises(SessionValidationError, match="timezone-aware"):
        session.is_expired(datetime(2030, 1, 1))
