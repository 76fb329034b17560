"""``kaizen approvals``: list, show, approve, reject, sweep, audit verify."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kaizen import service
from kaizen.cli._output import emit
from kaizen.cli._reader import add_as_flag, viewer_of

__all__ = ["register"]

_COLUMNS = ("id", "status", "external_agent_id", "requested_by", "approvers", "created_at")
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
    emit(sys.stdout, page["items"], as_json=False, columns=_COLUMNS, empty="no approval requests")
    if page["next_offset"] is not None:
        sys.stdout.write(f"(more: --offset {page['next_offset']})\n")
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        approval = await service.get_approval(k, args.id, viewer_of(args))
    emit(sys.stdout, approval, as_json=args.json)
    return 0


async def _approve(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        result = await service.approve(k, args.id, args.by)
    emit(sys.stdout, result if args.json else f"approved {args.id} as {args.by}", as_json=args.json)
    return 0


async def _reject(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        result = await service.reject(k, args.id, args.by, args.reason)
    emit(sys.stdout, result if args.json else f"rejected {args.id} as {args.by}", as_json=args.json)
    return 0


async def _sweep(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url) as k:
        count = await service.sweep_approvals(k)
    emit(
        sys.stdout,
        {"timed_out": count} if args.json else f"timed out {count} request(s)",
        as_json=args.json,
    )
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

    p = sub.add_parser("approve", help="approve a request")
    p.add_argument("id")
    p.add_argument("--by", required=True, metavar="USER", help="the approving user")
    _json_flag(p)
    p.set_defaults(handler=_approve)

    p = sub.add_parser("reject", help="reject a request")
    p.add_argument("id")
    p.add_argument("--by", required=True, metavar="USER", help="the rejecting user")
    p.add_argument("--reason", required=True, help="why it is rejected")
    _json_flag(p)
    p.set_defaults(handler=_reject)

    p = sub.add_parser("sweep", help="time out every overdue pending request")
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
