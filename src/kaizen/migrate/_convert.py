"""Converting one legacy row into our request or session, or saying why it cannot be.

Both legacy layouts store the same columns: the spec's DDL (``TIMESTAMP``
columns, JSON in ``TEXT``) and the upstream library's (every column text, ISO
timestamps, ``""`` for unset). So one reading serves both: an empty or blank
string is unset, a timestamp is a driver datetime or ISO 8601 text (naive means
UTC), JSON is text or, where a column was already JSON, the decoded value.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dataflow.errors import ValidationError
from kaizen.governance.models import ApprovalStatus, ExternalAgentApprovalRequest
from kaizen.integrations.nexus._checks import MAX_TTL_HOURS, later
from kaizen.integrations.nexus.models import DEFAULT_TTL, CrossChannelSession

__all__ = ["Unconvertible", "to_request", "to_session"]

Row = dict[str, Any]
_KINDS: dict[type, str] = {list: "array", dict: "object"}


class Unconvertible(ValueError):
    """A legacy row that cannot become one of ours; the message says why."""


def _show(value: Any) -> str:
    """``repr(value)``, cut short: a reason quotes the value, not a whole document."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _raw(row: Row, name: str) -> Any:
    """A column's value as read (None for a column the table lacks); checked by the caller."""
    return row.get(name)


def _text(row: Row, name: str) -> str | None:
    """A text column: None when unset (NULL, missing, empty or blank)."""
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise Unconvertible(f"{name} is not text: {_show(value)}")
    return value


def _time(row: Row, name: str) -> datetime | None:
    """A timestamp column as an aware UTC datetime (naive values are taken as UTC)."""
    return _as_time(row.get(name), name)


def _as_time(value: Any, name: str) -> datetime | None:
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise Unconvertible(f"{name} is not an ISO 8601 time: {_show(value)}") from None
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise Unconvertible(f"{name} is not a time: {_show(value)}")
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _json(row: Row, name: str, kind: type) -> Any:
    """A JSON column holding ``kind`` (unset, or JSON ``null``: an empty one)."""
    value = row.get(name)
    if isinstance(value, bytes):  # a BLOB column
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise Unconvertible(f"{name} is not UTF-8 text") from None
    if isinstance(value, str):
        if not value.strip():
            return kind()
        try:
            value = json.loads(value, parse_constant=_refuse)
        except ValueError as exc:
            raise Unconvertible(f"{name} is not valid JSON: {exc}") from None
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise Unconvertible(f"{name} is not a JSON {_KINDS[kind]}: {_show(value)}")
    return value


def _status(row: Row) -> ApprovalStatus:
    value = _text(row, "status") or ApprovalStatus.PENDING.value  # the spec's default
    try:
        return ApprovalStatus(value)
    except ValueError:
        raise Unconvertible(f"unknown status {_show(value)}") from None


def to_request(row: Row) -> ExternalAgentApprovalRequest:
    """The request a legacy ``external_agent_approval_request(s)`` row describes.

    A decided request keeps its decision; none gets a deadline (the legacy
    tables have none). ``created_at`` falls back to ``updated_at``.

    Raises:
        Unconvertible: The row cannot be a valid request (nothing to migrate).
    """
    created = _time(row, "created_at") or _time(row, "updated_at")
    if created is None:
        raise Unconvertible("created_at is unset")
    request = ExternalAgentApprovalRequest(
        id=row["id"],
        external_agent_id=_raw(row, "external_agent_id"),  # validated below, as every field
        requested_by=_raw(row, "requested_by"),
        approvers=_json(row, "approvers_json", list),
        status=_status(row),
        approval_reason=_text(row, "approval_reason"),
        request_metadata=_json(row, "request_metadata_json", dict),
        created_at=created,
        approved_at=_time(row, "approved_at"),
        approved_by=_text(row, "approved_by"),
        rejection_reason=_text(row, "rejection_reason"),
    )
    try:
        request.validate()
    except ValidationError as exc:
        raise Unconvertible(str(exc)) from None
    return request


def _activity(row: Row) -> dict[str, datetime]:
    activity: dict[str, datetime] = {}
    for channel, when in _json(row, "channel_activity_json", dict).items():
        at = _as_time(when, f"channel_activity_json[{channel!r}]")
        if at is not None:  # unset: no activity (as upstream reads it)
            activity[channel] = at
    return activity


def _ttl(last_accessed: datetime, expires_at: datetime | None) -> timedelta:
    """The session's own TTL, as far as its times tell (else the default)."""
    if expires_at is None:
        return DEFAULT_TTL
    seconds = (expires_at - last_accessed).total_seconds()
    if not 1 <= seconds <= MAX_TTL_HOURS * 3600:
        return DEFAULT_TTL
    return timedelta(seconds=round(seconds))


def to_session(row: Row) -> CrossChannelSession:
    """The session a legacy ``cross_channel_session(s)`` row describes.

    Unset times fall back: ``created_at`` to ``last_accessed`` then
    ``updated_at``; ``last_accessed`` to ``created_at``; ``expires_at`` to
    ``last_accessed`` plus the TTL. The TTL is ``expires_at - last_accessed``
    when that is a valid one, else the default hour.

    Raises:
        Unconvertible: The row cannot be a valid session (nothing to migrate).
    """
    accessed = _time(row, "last_accessed")
    created = _time(row, "created_at") or accessed or _time(row, "updated_at")
    if created is None:
        raise Unconvertible("created_at and last_accessed are unset")
    accessed = accessed or created
    expires = _time(row, "expires_at")
    ttl = _ttl(accessed, expires)
    try:
        return CrossChannelSession(
            session_id=row["id"],
            user_id=_raw(row, "user_id"),  # validated by the session, as every field
            created_at=created,
            last_accessed=accessed,
            expires_at=expires or later(accessed, ttl),
            state=_json(row, "state_json", dict),
            channel_activity=_activity(row),
            memory_pool_id=_text(row, "memory_pool_id"),
            ttl=ttl,
        )
    except ValidationError as exc:
        raise Unconvertible(str(exc)) from None
