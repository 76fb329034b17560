"""``kaizen delegations``: who may vote for an approver (add, revoke, list).

A delegation is stored: every instance honours it at once, and a revoked one is
refused at once. Every change is audited (who, when, before/after).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from dataflow.errors import ValidationError
from kaizen import service
from kaizen.cli._output import emit

__all__ = ["parse_until", "register"]

_COLUMNS = ("approver_id", "delegate_id", "until", "created_at", "created_by")
_EXAMPLE = "e.g. 2026-12-31T18:00:00+00:00"


def parse_until(value: str, *, now: datetime | None = None) -> datetime:
    """When a delegation made with ``--until value`` ends.

    Args:
        value: An ISO-8601 datetime with a timezone (``Z`` or an offset).
        now: The current time (default: the current UTC time).

    Returns:
        The end, in UTC.

    Raises:
        ValidationError: ``value`` is not such a datetime, or not in the future.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(
            f"--until {value!r}: expected an ISO-8601 datetime with a timezone ({_EXAMPLE})"
        ) from None
    if moment.utcoffset() is None:
        raise ValidationError(f"--until {value!r} has no timezone: add one ({_EXAMPLE})")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # past year 9999 in UTC
        raise ValidationError(f"--until {value!r} is out of range") from None
    if moment <= (now or datetime.now(UTC)):
        raise ValidationError(f"--until {value!r}: that is not in the future")
    return moment


async def _add(args: argparse.Namespace) -> int:
    until = parse_until(args.until) if args.until is not None else None
    async with service.Kaizen.open(args.database_url) as k:
        made = await service.delegate(k, args.approver, args.to, until=until, actor=args.actor)
    if args.json:
        emit(sys.stdout, made, as_json=True)
    else:
        end = made["until"].isoformat() if made["until"] is not None else "revoked"
        sys.stdout.write(
            f"{made['delegate_id']} may vote for {made['approver_id']} until {end} "
            f"(made by {made['created_by']})\n"
        )
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        await service.revoke_delegation(k, args.approver, args.to, actor=args.actor)
    if args.json:
        emit(sys.stdout, {"approver_id": args.approver, "delegate_id": args.to}, as_json=True)
    else:
        sys.stdout.write(f"revoked {args.to}'s delegation from {args.approver}\n")
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        found = await service.list_delegations(k, approver=args.approver, delegate=args.delegate)
    emit(sys.stdout, found, as_json=args.json, columns=_COLUMNS, empty="no active delegations")
    return 0


def _pair(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("approver", metavar="APPROVER", help="who delegates")
    parser.add_argument("--to", required=True, metavar="DELEGATE", help="who stands in")
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="ACTOR",
        help="who makes the change, for the audit trail (default: the approver)",
    )
    _json_flag(parser)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def register(commands: Any) -> None:
    """Add ``delegations`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser(
        "delegations",
        help="let someone vote for an approver, or stop it",
        description=(
            "A delegate votes for the approver (the vote records on whose behalf), at most "
            "once per request and never on a request of their own."
        ),
    )
    sub = group.add_subparsers(dest="delegations_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("add", help="let DELEGATE vote for APPROVER (replacing any such)")
    _pair(p)
    p.add_argument(
        "--until",
        metavar="WHEN",
        help=f"when it ends: an ISO-8601 datetime with a timezone, {_EXAMPLE} "
        "(default: until revoked)",
    )
    p.set_defaults(handler=_add)

    p = sub.add_parser("revoke", help="end DELEGATE's delegation from APPROVER")
    _pair(p)
    p.set_defaults(handler=_revoke)

    p = sub.add_parser("list", help="list the active delegations")
    p.add_argument("--approver", metavar="A", help="only delegations from this approver")
    p.add_argument("--delegate", metavar="D", help="only delegations to this delegate")
    _json_flag(p)
    p.set_defaults(handler=_list)
