"""How approval requests read on a terminal: progress toward the quorum, votes, outcomes.

Only the text output; ``--json`` prints the service's dicts as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TextIO

from kaizen.cli._output import emit

__all__ = ["list_row", "show_approval", "vote_outcome"]

_VOTE_COLUMNS = ("approver_id", "decision", "at", "on_behalf_of", "comment")
#: Left out of ``show``: shown as the votes table, or only when set.
_NOT_SUMMARISED = ("votes", "approved_metadata")


def list_row(approval: Mapping[str, Any]) -> dict[str, Any]:
    """A request as a row of ``approvals list``: its progress as ``1 of 2``."""
    return {**approval, "progress": approval["progress"]["text"]}


def show_approval(out: TextIO, approval: Mapping[str, Any]) -> None:
    """Print one request: its fields, quorum progress, then its votes as a table."""
    summary: dict[str, Any] = {}
    for key, value in approval.items():
        if key == "progress":
            summary[key] = f"{value['text']} approvals"
        elif key not in _NOT_SUMMARISED:
            summary[key] = value
    if approval.get("approved_metadata") is not None:
        summary["approved_metadata"] = approval["approved_metadata"]
    emit(out, summary, as_json=False)
    votes = approval.get("votes") or []
    if not votes:
        out.write("votes: none\n")
        return
    out.write("votes:\n")
    edited = any(v.get("metadata") is not None for v in votes)
    columns = (*_VOTE_COLUMNS, "metadata") if edited else _VOTE_COLUMNS
    emit(out, list(votes), as_json=False, columns=columns)


def vote_outcome(approval: Mapping[str, Any], voter: str) -> str:
    """One line on what ``voter``'s vote did to ``approval`` (the request after it)."""
    vote = next((v for v in approval["votes"] if v["approver_id"] == voter), None)
    behalf = vote.get("on_behalf_of") if vote is not None else None
    who = f"{voter} on behalf of {behalf}" if behalf else voter
    status, request_id = approval["status"], approval["id"]
    progress = f"{approval['progress']['text']} approvals"
    if status == "pending":
        return f"recorded vote: {progress}; {request_id} is still pending (voted as {who})"
    if status == "approved":
        edited = ", with edited metadata" if approval.get("approved_metadata") is not None else ""
        return f"approved {request_id} as {who} ({progress}{edited})"
    if status == "rejected":
        return f"rejected {request_id} as {who}"
    return f"{request_id} is {status}"
