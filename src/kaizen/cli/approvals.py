"""``kaizen approvals``: list, show, request, approve, reject (votes toward a quorum), sweep,
audit."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dataflow.errors import ValidationError
from kaizen import service
from kaizen.cli._approval_text import list_row, show_approval, vote_outcome
from kaizen.cli._output import emit
from kaizen.cli._reader import add_as_flag, viewer_of

__all__ = ["parse_metadata", "register"]

_COLUMNS = ("id", "status", "progress", "external_agent_id", "requested_by", "created_at")
#: Added by ``--wide``.
_WIDE_COLUMNS = ("approvers", "escalations", "deadline_at")
_HEADERS = {"external_agent_id": "agent", "requested_by": "requester", "created_at": "created"}
_JSON_TYPES = {list: "an array", str: "a string", bool: "a boolean", int: "a number"}
_PROBLEM_COLUMNS = ("request_id", "seq", "message")


async def _list(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        page = await service.list_approvals(
            k,
            viewer=viewer_of(args),
            status=args.status,
            approver=args.approver,
            agent=args.agent,
            requested_by=args.requested_by,
            decided_by=args.decided_by,
            limit=args.limit,
            offset=args.offset,
        )
    if args.json:
        emit(sys.stdout, page, as_json=True)
        return 0
    rows = [list_row(r) for r in page["items"]]
    emit(
        sys.stdout,
        rows,
        as_json=False,
        columns=_COLUMNS,
        wide_columns=_WIDE_COLUMNS,
        headers=_HEADERS,
        empty="no approval requests",
    )
    if page["next_offset"] is not None:
        sys.stdout.write(f"(more: --offset {page['next_offset']})\n")
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        approval = await service.get_approval(k, args.id, viewer_of(args))
    if args.json:
        emit(sys.stdout, approval, as_json=True)
    else:
        show_approval(sys.stdout, approval)
    return 0


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_metadata(text: str | None) -> dict[str, Any] | None:
    """The JSON object ``--metadata`` gives (None without it).

    Raises:
        ValidationError: ``text`` is not JSON, or not an object.
    """
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError included
        raise ValidationError(f"--metadata is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_TYPES.get(type(value), "a number")
        raise ValidationError(f"--metadata must be a JSON object ({{...}}), got {kind}")
    return value


async def _approve(args: argparse.Namespace) -> int:
    metadata = parse_metadata(args.metadata)
    async with service.Kaizen.open(args.database_url, create=False) as k:
        result = await service.approve(
            k,
            args.id,
            args.by,
            comment=args.comment,
            metadata=metadata,
            on_behalf_of=args.on_behalf_of,
        )
    emit(sys.stdout, result if args.json else vote_outcome(result, args.by), as_json=args.json)
    return 0


async def _reject(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        result = await service.reject(
            k, args.id, args.by, args.reason, on_behalf_of=args.on_behalf_of
        )
    emit(sys.stdout, result if args.json else vote_outcome(result, args.by), as_json=args.json)
    return 0


async def _sweep(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url) as k:
        done = await service.sweep_approvals(k)
    text = f"escalated {done['escalated']}, timed out {done['timed_out']} request(s)"
    emit(sys.stdout, done if args.json else text, as_json=args.json)
    return 0


_EVENT_COLUMNS = ("seq", "event", "actor", "occurred_at", "details")


async def _audit_show(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        events = await service.approval_audit(k, args.id, viewer_of(args))
    emit(sys.stdout, events, as_json=args.json, columns=_EVENT_COLUMNS)
    return 0


async def _verify(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        report = await service.verify_audit(k)
    if args.json:
        emit(sys.stdout, report, as_json=True)
    elif report["ok"]:
        sys.stdout.write(
            f"audit ok: {report['events']} event(s) in {report['requests']} chain(s)\n"
        )
    else:
        sys.stdout.write(f"audit FAILED: {len(report['problems'])} problem(s)\n")
        # The message names the fields of a row that differs from its trail.
        emit(sys.stdout, report["problems"], as_json=False, columns=_PROBLEM_COLUMNS)
    return 0 if report["ok"] else 8


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _voter_flags(parser: argparse.ArgumentParser, who: str) -> None:
    parser.add_argument(
        "--as",
        "--by",
        dest="by",
        required=True,
        metavar="USER",
        help=f"{who} (an approver or a delegate of one)",
    )
    parser.add_argument(
        "--on-behalf-of",
        metavar="APPROVER",
        help="for a delegate of several approvers: whom the vote is for",
    )


def register(commands: Any) -> None:
    """Add ``approvals`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser("approvals", help="inspect and decide approval requests")
    sub = group.add_subparsers(dest="approvals_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="list requests, newest first")
    p.add_argument("--status", choices=service.STATUSES, default="all")
    p.add_argument("--approver", help="only requests this user may decide")
    p.add_argument("--agent", help="only requests for this external agent")
    p.add_argument("--requested-by", metavar="USER", help="only requests this user made")
    p.add_argument("--decided-by", metavar="USER", help="only requests this user decided")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0, help="skip this many first")
    add_as_flag(p, "what they made or may decide")
    _json_flag(p)
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="show one request")
    p.add_argument("id")
    add_as_flag(p, "what they made or may decide")
    _json_flag(p)
    p.set_defaults(handler=_show)

    _register_votes(sub)
    from kaizen.cli import approval_request  # it uses parse_metadata from here

    approval_request.register(sub)

    p = sub.add_parser("sweep", help="escalate or time out every overdue pending request")
    _json_flag(p)
    p.set_defaults(handler=_sweep)

    audit = sub.add_parser("audit", help="audit trail commands")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    p = audit_sub.add_parser("show", help="one request's audit events, oldest first")
    p.add_argument("id")
    add_as_flag(p, "what they made or may decide")
    _json_flag(p)
    p.set_defaults(handler=_audit_show)
    p = audit_sub.add_parser(
        "verify", help="verify every hash chain and the rows it seals (exit 8 if tampered)"
    )
    _json_flag(p)
    p.set_defaults(handler=_verify)


def _register_votes(sub: Any) -> None:
    """``approve`` and ``reject``: votes toward the quorum, in person or as a delegate."""
    p = sub.add_parser(
        "approve", help="vote to approve a request (it is approved when its quorum is met)"
    )
    p.add_argument("id")
    _voter_flags(p, "the approving user")
    p.add_argument("--comment", metavar="TEXT", help="shown with the vote")
    p.add_argument(
        "--metadata",
        metavar="JSON",
        help="approve an edited version of the request's metadata (a JSON object)",
    )
    _json_flag(p)
    p.set_defaults(handler=_approve)

    p = sub.add_parser("reject", help="reject a request (one rejection vetoes it)")
    p.add_argument("id")
    _voter_flags(p, "the rejecting user")
    p.add_argument("--reason", required=True, help="why it is rejected")
    _json_flag(p)
    p.set_defaults(handler=_reject)
