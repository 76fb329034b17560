"""``kaizen policies``: the stored approval policies every instance routes by.

A stored policy applies to requests created after it is set (a request keeps the
policy it was created under); every change is audited: who, when, before/after.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from dataflow.errors import ValidationError
from kaizen import service
from kaizen.cli._output import cell, emit

__all__ = ["id_list", "register"]

_COLUMNS = (
    "agent",
    "approval_level",
    "custom_approvers",
    "quorum",
    "approval_timeout_seconds",
    "escalate_to",
)
_HEADERS = {
    "approval_level": "level",
    "custom_approvers": "approvers",
    "approval_timeout_seconds": "timeout_s",
}
_HISTORY_COLUMNS = ("seq", "event", "actor", "occurred_at", "changes")


def id_list(flag: str, text: str) -> list[str]:
    """The ids of a comma-separated ``flag`` value, in order, without repeats.

    Raises:
        ValidationError: It names none.
    """
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not ids:
        raise ValidationError(f"{flag} names no user id: give a comma-separated list (a,b)")
    return ids


async def _set(args: argparse.Namespace) -> int:
    approvers = id_list("--approvers", args.approvers)
    escalate_to = id_list("--escalate-to", args.escalate_to) if args.escalate_to else None
    async with service.Kaizen.open(args.database_url) as k:
        stored = await service.set_policy(
            k,
            args.agent,
            approvers=approvers,
            quorum=args.quorum,
            timeout_seconds=args.timeout,
            escalate_to=escalate_to,
            reason=args.reason,
            actor=args.actor,
        )
    emit(sys.stdout, stored, as_json=args.json)
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        policies = await service.list_policies(k)
    emit(
        sys.stdout,
        policies,
        as_json=args.json,
        columns=_COLUMNS,
        headers=_HEADERS,
        empty="no stored policies",
    )
    return 0


def _changes(details: Mapping[str, Any]) -> str:
    """What one ``policy_set``/``policy_deleted`` event changed, for a table cell."""
    before, after = details.get("before"), details.get("after")
    if before is None:
        return "created"
    if after is None:
        return "deleted"
    changed = [
        f"{key}: {cell(before.get(key))} -> {cell(after.get(key))}"
        for key in dict.fromkeys([*before, *after])
        if before.get(key) != after.get(key)
    ]
    return "; ".join(changed) or "unchanged"


async def _show(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        policy = await service.get_policy(k, args.agent)
    if args.json:
        emit(sys.stdout, policy, as_json=True)
        return 0
    history = policy.pop("history")
    emit(sys.stdout, policy, as_json=False)
    sys.stdout.write("history:\n")
    rows = [{**event, "changes": _changes(event["details"])} for event in history]
    emit(sys.stdout, rows, as_json=False, columns=_HISTORY_COLUMNS)
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        await service.delete_policy(k, args.agent, actor=args.actor)
    if args.json:
        emit(sys.stdout, {"agent": args.agent, "deleted": True}, as_json=True)
    else:
        sys.stdout.write(f"deleted the stored policy of {args.agent}\n")
    return 0


def _common(parser: argparse.ArgumentParser, *, actor: bool = False) -> None:
    if actor:
        parser.add_argument(
            "--as",
            dest="actor",
            metavar="ACTOR",
            default="operator",
            help="who makes the change, for the policy's audit trail (default: %(default)s)",
        )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def register(commands: Any) -> None:
    """Add ``policies`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser(
        "policies",
        help="set, list, show and delete the stored approval policies",
        description=(
            "Stored approval policies: every instance, the CLI and the server route an "
            "agent's new requests by its policy (a request keeps the one it was created under)."
        ),
    )
    sub = group.add_subparsers(dest="policies_command", metavar="SUBCOMMAND", required=True)
    _register_set(sub)

    p = sub.add_parser("list", help="list the stored policies")
    _common(p)
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="show an agent's policy and its audit history")
    p.add_argument("agent", metavar="AGENT")
    _common(p)
    p.set_defaults(handler=_show)

    p = sub.add_parser("delete", help="delete an agent's stored policy")
    p.add_argument("agent", metavar="AGENT")
    _common(p, actor=True)
    p.set_defaults(handler=_delete)


def _register_set(sub: Any) -> None:
    p = sub.add_parser("set", help="store a policy for an agent (replacing any)")
    p.add_argument("agent", metavar="AGENT", help="the external agent id")
    p.add_argument(
        "--approvers", required=True, metavar="A,B", help="who may vote (comma-separated)"
    )
    p.add_argument(
        "--quorum", type=int, default=1, metavar="N", help="approvals needed (default: 1)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long a request stays decidable (default: 3600)",
    )
    p.add_argument(
        "--escalate-to",
        metavar="X,Y",
        help="who an undecided request goes to at its deadline (default: it times out)",
    )
    p.add_argument("--reason", metavar="TEXT", help="shown to approvers")
    _common(p, actor=True)
    p.set_defaults(handler=_set)
