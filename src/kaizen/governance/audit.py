"""The hash chain of the audit trail: building events and verifying chains.

Each request has its own chain. Event ``n`` stores ``prev_hash`` (the hash of
event ``n - 1``, or :data:`GENESIS` for the first) and ``hash``: sha256 of the
canonical JSON of its fields and ``prev_hash``. The request row keeps the seq
and hash of its latest event, updated by the same conditional write that
changes its state, so removing the last event is detected as well as editing
or removing an earlier one. The events also seal the row: the state they fold
to (:mod:`kaizen.governance._seal`) must be what the row holds. The chain proves
integrity against edits made outside this code, not against someone who can
recompute every hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kaizen.governance._seal import differences, fold
from kaizen.governance.models import AuditEvent, AuditProblem, AuditReport

__all__ = [
    "GENESIS",
    "SWEPT",
    "canonical",
    "check_links",
    "event_hash",
    "make_event",
    "verify_chain",
]

GENESIS = "0" * 64
#: Prefix of the token a timeout sweep leaves as a request's head instead of a hash
#: (one set-based UPDATE cannot write a different hash per row); the request's last
#: event, ``timed_out``, carries the same token in its details.
SWEPT = "swept:"


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 text, no NaN."""
    return _CANONICAL.encode(value)


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(
    request_id: str,
    seq: int,
    event: str,
    actor: str,
    occurred_at: datetime,
    details_json: str,
    prev_hash: str,
) -> str:
    """The chained hash of one event (``details_json`` as stored)."""
    body = canonical(
        {
            "request_id": request_id,
            "seq": seq,
            "event": event,
            "actor": actor,
            "occurred_at": _timestamp(occurred_at),
            "details": details_json,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def make_event(
    request_id: str,
    seq: int,
    event: str,
    actor: str,
    occurred_at: datetime,
    details: dict[str, Any],
    prev_hash: str,
) -> AuditEvent:
    """Build the next event of a chain, hash included."""
    # Stored timestamps keep microseconds on every database; truncate nothing else.
    when = occurred_at.astimezone(UTC)
    digest = event_hash(request_id, seq, event, actor, when, canonical(details), prev_hash)
    return AuditEvent(request_id, seq, event, actor, when, details, prev_hash, digest)


def _is_head(event: AuditEvent, digest: str) -> bool:
    if digest.startswith(SWEPT):
        return event.event == "timed_out" and event.details.get("sweep") == digest
    return event.hash == digest


def verify_chain(
    request_id: str,
    events: Sequence[tuple[AuditEvent, str]],
    head: tuple[int, str] | None,
    report: AuditReport,
    row: Mapping[str, Any] | None = None,
) -> None:
    """Check one request's chain and record what is wrong in ``report``.

    When the chain itself is intact and ``row`` is given, the row is compared
    with the state the chain folds to; differing fields are one problem.

    Args:
        request_id: The request.
        events: ``(event, details_json as stored)`` in seq order.
        head: ``(seq, hash)`` the request row holds, or None if the row is gone.
        report: Collects counts and problems.
        row: The stored request's values by field name (see
            :data:`kaizen.governance._seal.SEALED`), or None if the row is gone.
    """
    report.requests += 1
    report.events += len(events)
    problems = report.problems
    found = len(problems)
    if not check_links(request_id, events, problems):
        return
    _check_head(request_id, events, head, problems)
    if row is not None and len(problems) == found:
        _check_row(request_id, events, row, problems)


def check_links(
    request_id: str, events: Sequence[tuple[AuditEvent, str]], problems: list[AuditProblem]
) -> bool:
    """Check seqs, links and hashes of one chain (a request's, or a settings subject's);
    False when an event is missing (nothing more to check)."""
    prev = GENESIS
    for expected_seq, (ev, details_json) in enumerate(events):
        if ev.seq != expected_seq:
            problems.append(
                AuditProblem(request_id, expected_seq, f"event {expected_seq} is missing")
            )
            return False
        if ev.prev_hash != prev:
            problems.append(
                AuditProblem(request_id, ev.seq, "chain broken: prev_hash does not match")
            )
        recomputed = event_hash(
            request_id, ev.seq, ev.event, ev.actor, ev.occurred_at, details_json, ev.prev_hash
        )
        if recomputed != ev.hash:
            problems.append(AuditProblem(request_id, ev.seq, "event was modified (hash mismatch)"))
        prev = ev.hash
    return True


def _check_row(
    request_id: str,
    events: Sequence[tuple[AuditEvent, str]],
    row: Mapping[str, Any],
    problems: list[AuditProblem],
) -> None:
    seal = fold(ev for ev, _ in events)
    if seal is None:  # a row whose head is a 'deleted' event: put back behind our back
        problems.append(
            AuditProblem(request_id, None, "request row exists but its trail ends with 'deleted'")
        )
        return
    fields = differences(seal, row)
    if fields:
        message = f"row differs from its audit trail: {', '.join(fields)}"
        problems.append(AuditProblem(request_id, None, message, fields))


def _check_head(
    request_id: str,
    events: Sequence[tuple[AuditEvent, str]],
    head: tuple[int, str] | None,
    problems: list[AuditProblem],
) -> None:
    if not events:
        problems.append(AuditProblem(request_id, None, "request has no audit events"))
        return
    last = events[-1][0]
    if head is None:
        if last.event != "deleted":
            problems.append(
                AuditProblem(
                    request_id, None, "request row is gone but its trail has no 'deleted' event"
                )
            )
        return
    seq, digest = head
    if last.seq < seq:
        problems.append(
            AuditProblem(request_id, last.seq + 1, f"events after seq {last.seq} are missing")
        )
    elif last.seq != seq or not _is_head(last, digest):
        problems.append(
            AuditProblem(request_id, last.seq, "latest event does not match the request row")
        )
