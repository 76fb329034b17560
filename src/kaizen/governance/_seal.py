"""What an audit trail seals of its request row: the state the chain folds to.

A request's events, replayed in order, say what its row must hold. ``requested``
and ``updated`` events (and a status change made through ``update()``) carry the
request's content; a decision (``approved``, ``rejected``, ``timed_out``) sets the
status, ``approved_at`` to the event's time, ``approved_by`` to its actor (not
for a timeout) and ``rejection_reason`` to its reason, if any; ``deleted`` means
no row. The fold reads only hashed event fields, so each event's hash covers
the state its request has after it.

Events written since quorums are self-describing: ``details["set"]`` holds every
field the change set and ``details["vote"]`` the vote it recorded (its time is
the event's). Votes are sealed too: the request's votes must be the ones its
chain recorded, in order.

A field an event's content lacks (``approved_at`` in events written before it
was recorded) is not sealed until a later event sets it; the policy fields,
which such events also lack, are sealed as the policy requests had then
(quorum 1, no escalation, no exclusions, no edited metadata). Values are compared
canonically: datetimes as UTC instants, JSON as every database stores it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from dataflow.errors import ValidationError
from dataflow.jsonvalues import clean_json
from kaizen.governance.models import AuditEvent

__all__ = ["SEALED", "Seal", "canonical_value", "differences", "fold"]

#: Content key of the audit events -> the request field it records.
_CONTENT = {
    "external_agent_id": "external_agent_id",
    "requested_by": "requested_by",
    "approvers": "approvers",
    "status": "status",
    "approval_reason": "approval_reason",
    "metadata": "request_metadata",
    "deadline_at": "deadline_at",
    "approved_by": "approved_by",
    "approved_at": "approved_at",
    "rejection_reason": "rejection_reason",
    "quorum": "quorum",
    "escalate_to": "escalate_to",
    "escalations": "escalations",
    "timeout_seconds": "timeout_seconds",
    "excluded_approvers": "excluded_approvers",
    "approved_metadata": "approved_metadata",
}
#: The request fields a trail can seal (names of ExternalAgentApprovalRequest).
SEALED: tuple[str, ...] = (*_CONTENT.values(), "votes")
#: Events that carry the request's content.
_CONTENT_EVENTS = frozenset({"requested", "updated"})
#: Decision events -> the status they set.
_DECISIONS = {"approved": "approved", "rejected": "rejected", "timed_out": "timeout"}
_TIMES = frozenset({"deadline_at", "approved_at"})
#: The policy every request had before requests recorded one (single approver, no
#: escalation, no edits).
_BEFORE_POLICIES: dict[str, Any] = {
    "quorum": 1,
    "escalate_to": [],
    "escalations": 0,
    "timeout_seconds": None,
    "excluded_approvers": [],
    "approved_metadata": None,
}
_JSON = frozenset({"request_metadata", "approved_metadata"})
# The audit encoder's settings; its own copy, as kaizen.governance.audit imports this module.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

#: Sealed field -> canonical value; a field missing is not sealed.
Seal = dict[str, Any]


def fold(events: Iterable[AuditEvent]) -> Seal | None:
    """The row state a chain describes, or None when the request was deleted.

    Args:
        events: The request's events in seq order.

    Returns:
        The sealed fields and their canonical values.
    """
    state: Seal | None = {"votes": []}
    for event in events:
        state = _step({"votes": []} if state is None else state, event)
    return state


def _step(state: Seal, event: AuditEvent) -> Seal | None:
    if event.event == "deleted":
        return None
    details = event.details
    if isinstance(details.get("set"), dict):  # a change: the fields it set, its vote
        state = {**state}
        for name, value in details["set"].items():
            state[name] = canonical_value(name, value)
        vote = details.get("vote")
        if isinstance(vote, dict):
            state["votes"] = [*state["votes"], _vote_value(vote, event.occurred_at)]
        return state
    if event.event in _CONTENT_EVENTS or "status" in details:
        # update() overwrites every column (not the votes): what its event does not
        # record is unknown.
        fields = {
            name: canonical_value(name, details[key])
            for key, name in _CONTENT.items()
            if key in details
        }
        # Content written before quorums had no policy: a request then had the one
        # these values describe, so they are sealed as such (not left open to edits).
        for name, value in _BEFORE_POLICIES.items():
            fields.setdefault(name, canonical_value(name, value))
        return {**fields, "votes": state["votes"]}
    status = _DECISIONS.get(event.event)
    if status is None:
        return state  # an event this version does not know changes nothing it seals
    state = {
        **state,
        "status": status,
        "approved_at": canonical_value("approved_at", event.occurred_at),
    }
    if event.event != "timed_out":
        state["approved_by"] = event.actor
    if details.get("reason") is not None:
        state["rejection_reason"] = details["reason"]
    return state


def _vote_value(vote: Mapping[str, Any], at: Any) -> Any:
    return canonical_value("votes", [{**vote, "at": at}])[0]


def differences(seal: Seal, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The sealed fields whose value in ``row`` differs from the trail's.

    Args:
        seal: What :func:`fold` returned.
        row: The stored request's values by field name (see :data:`SEALED`).
    """
    return tuple(
        name
        for name in SEALED
        if name in seal and canonical_value(name, row.get(name)) != seal[name]
    )


def canonical_value(name: str, value: Any) -> Any:
    """``value`` of field ``name`` in the form compared (as an event or a row holds it)."""
    if name in _TIMES:
        return _instant(value)
    if name == "votes":
        return [_vote(v) for v in value or []]
    if name in _JSON:
        if value is None:
            return None
        try:
            return _ENCODER.encode(clean_json(value, name))
        except ValidationError:
            return repr(value)  # a row no database stores differs from any event
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def _vote(vote: Any) -> Any:
    """A vote (a :class:`~kaizen.governance.models.Vote` or its event form) compared."""

    def get(key: str) -> Any:
        return vote.get(key) if isinstance(vote, Mapping) else getattr(vote, key, None)

    return (
        get("approver_id"),
        get("decision"),
        get("comment"),
        get("on_behalf_of"),
        canonical_value("approved_metadata", get("metadata")),
        _instant(get("at")),
    )


def _instant(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.astimezone(UTC)
    return value
