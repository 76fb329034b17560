"""``kaizen sessions``: list, show, cleanup."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kaizen import service
from kaizen.cli._output import emit
from kaizen.cli._reader import add_as_flag, viewer_of

__all__ = ["register"]

_COLUMNS = ("session_id", "user_id", "last_accessed", "expires_at", "expired")
_WIDE_COLUMNS = ("memory_pool_id", "created_at")


async def _list(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        rows = await service.list_sessions(
            k,
            viewer=viewer_of(args),
            user=args.user,
            include_expired=args.all,
            limit=args.limit,
            offset=args.offset,
        )
    emit(
        sys.stdout,
        rows,
        as_json=args.json,
        columns=_COLUMNS,
        wide_columns=_WIDE_COLUMNS,
        empty="no sessions",
    )
    return 0


async def _show(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        emit(sys.stdout, await service.get_session(k, args.id, viewer_of(args)), as_json=args.json)
    return 0


async def _cleanup(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url) as k:
        count = await service.cleanup_sessions(k)
    emit(
        sys.stdout,
        {"deleted": count} if args.json else f"deleted {count} expired session(s)",
        as_json=args.json,
    )
    return 0


def register(commands: Any) -> None:
    """Add ``sessions`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser("sessions", help="inspect and clean up cross-channel sessions")
    sub = group.add_subparsers(dest="sessions_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("list", help="list live sessions, most recently accessed first")
    p.add_argument("--user", help="only this user's sessions")
    p.add_argument("--all", action="store_true", help="include expired sessions")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--offset", type=int, default=0, help="skip this many first")
    add_as_flag(p, "their own sessions")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_list)

    p = sub.add_parser("show", help="show one session")
    p.add_argument("id")
    add_as_flag(p, "their own sessions")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_show)

    p = sub.add_parser("cleanup", help="delete expired sessions")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_cleanup)
