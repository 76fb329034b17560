"""``kaizen sessions``: list, show, create, update, cleanup.

``create`` and ``update`` are the ``cli`` channel of a cross-channel session: what
they write shows in the session's ``channel_activity`` next to the API's and MCP's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kaizen import service
from kaizen.cli._output import emit
from kaizen.cli._reader import add_as_flag, viewer_of
from kaizen.integrations.nexus import SessionValidationError

__all__ = ["CHANNEL", "parse_state", "register"]

#: The channel the command records in a session's activity.
CHANNEL = "cli"
_COLUMNS = ("session_id", "user_id", "last_accessed", "expires_at", "expired")
_WIDE_COLUMNS = ("memory_pool_id", "created_at")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json(text: str) -> Any:
    return json.loads(text, parse_constant=_refuse_constant)


def _value(text: str) -> Any:
    """A ``--set`` value: JSON when it parses as JSON, else the text itself."""
    try:
        return _json(text)
    except ValueError:
        return text


def parse_state(state: str | None, pairs: list[str] | None) -> dict[str, Any] | None:
    """The keys ``--state JSON`` and ``--set KEY=VALUE`` give (``--set`` wins), or None
    when neither is given.

    Raises:
        SessionValidationError: ``--state`` is not a JSON object, or a ``--set``
            has no ``=`` or an empty key.
    """
    found: dict[str, Any] | None = None
    if state is not None:
        try:
            found = _json(state)
        except ValueError as exc:  # JSONDecodeError included
            raise SessionValidationError(f"--state is not valid JSON: {exc}") from None
        if not isinstance(found, dict):
            raise SessionValidationError("--state must be a JSON object ({...})")
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise SessionValidationError(f"--set takes KEY=VALUE, got {pair!r}")
        found = {**(found or {}), key: _value(text)}
    return found


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


async def _create(args: argparse.Namespace) -> int:
    state = parse_state(args.state, args.set)  # bad input fails before the database opens
    async with service.Kaizen.open(args.database_url) as k:
        session = await service.create_session(
            k, args.user, ttl_hours=args.ttl_hours, channel=CHANNEL, state=state
        )
    emit(sys.stdout, session, as_json=args.json)
    return 0


async def _update(args: argparse.Namespace) -> int:
    state = parse_state(args.state, args.set)
    if state is None:
        raise SessionValidationError("nothing to merge: give --state JSON or --set KEY=VALUE")
    async with service.Kaizen.open(args.database_url, create=False) as k:
        session = await service.update_session_state(
            k, args.id, state, channel=CHANNEL, viewer=viewer_of(args)
        )
    emit(sys.stdout, session, as_json=args.json)
    return 0


def _state_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", metavar="JSON", help="keys to merge into the state (an object)")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="one key to merge (repeatable; VALUE is JSON if it parses, else text)",
    )


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
    group = commands.add_parser(
        "sessions", help="create, update, inspect and clean up cross-channel sessions"
    )
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

    p = sub.add_parser("create", help="create a session (the cli channel's activity)")
    p.add_argument("--user", required=True, metavar="USER", help="the session's user")
    p.add_argument(
        "--ttl-hours", type=float, metavar="H", help="lifetime after each use (default: 1)"
    )
    _state_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_create)

    p = sub.add_parser(
        "update",
        help="merge keys into a session's state (other keys are kept)",
        description="Merge keys into a live session's state atomically, as the cli "
        "channel; concurrent updates of other keys from any channel all survive.",
    )
    p.add_argument("id")
    _state_flags(p)
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help="act as this user: only their own sessions change (default: any session)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_update)

    p = sub.add_parser("cleanup", help="delete expired sessions")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_cleanup)
