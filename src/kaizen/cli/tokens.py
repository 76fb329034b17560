"""``kaizen tokens``: add, list and revoke the bearer tokens of ``kaizen serve``.

The token file comes from ``--tokens FILE`` or ``$KAIZEN_API_TOKENS_FILE``; a running
``kaizen serve`` reloads it when it changes, so a revoked token is refused at once.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from dataflow.errors import ValidationError
from kaizen.api.auth import ROLES, USER, TokenConfigError
from kaizen.cli._output import emit
from kaizen.cli.serve import TOKENS_FILE_VAR

__all__ = ["parse_expiry", "register"]

_COLUMNS = ("id", "user", "role", "created_at", "expires_at", "expired")
_DURATION = re.compile(r"(\d{1,9})([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(value: str, *, now: datetime | None = None) -> datetime:
    """When a token made with ``--expires value`` expires.

    Args:
        value: A duration from now (``90s``, ``45m``, ``12h``, ``30d``, ``2w``) or an
            ISO-8601 datetime (UTC when it has no offset).
        now: The current time (default: the current UTC time).

    Returns:
        The expiry, in UTC.

    Raises:
        ValidationError: ``value`` is neither, or not in the future.
    """
    now = now or datetime.now(UTC)
    text = value.strip()
    try:
        duration = _DURATION.fullmatch(text)
        if duration:
            moment = now + timedelta(seconds=int(duration[1]) * _SECONDS[duration[2]])
        else:
            moment = datetime.fromisoformat(text)
            if moment.utcoffset() is None:
                moment = moment.replace(tzinfo=UTC)
            moment = moment.astimezone(UTC)  # may overflow past year 9999
    except (ValueError, OverflowError) as exc:
        raise ValidationError(
            f"--expires {value!r}: expected a duration (90s, 45m, 12h, 30d, 2w) "
            "or an ISO-8601 datetime"
        ) from exc
    if moment <= now:
        raise ValidationError(f"--expires {value!r}: that is not in the future")
    return moment.astimezone(UTC)


def _file(args: argparse.Namespace) -> str:
    path: str | None = args.tokens or os.environ.get(TOKENS_FILE_VAR)
    if not path:
        raise TokenConfigError(f"no token file: use --tokens FILE or ${TOKENS_FILE_VAR}")
    return path


async def _add(args: argparse.Namespace) -> int:
    from kaizen.api.token_admin import add_token

    expires_at = parse_expiry(args.expires) if args.expires else None
    path = _file(args)
    token, record = add_token(path, args.user, role=args.role, expires_at=expires_at)
    shown: dict[str, Any] = {"token": token, **record.describe()}
    del shown["expired"]
    emit(sys.stdout, shown, as_json=args.json, wide=True)  # never cut the token
    sys.stderr.write(
        f"kaizen: the token is shown only once: store it now ({path} keeps only its hash)\n"
    )
    return 0


async def _list(args: argparse.Namespace) -> int:
    from kaizen.api.token_admin import list_tokens

    path = _file(args)
    now = datetime.now(UTC)
    rows = [record.describe(now) for record in list_tokens(path)]
    emit(sys.stdout, rows, as_json=args.json, columns=_COLUMNS, empty=f"no tokens in {path}")
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    from kaizen.api.token_admin import revoke_tokens

    now = datetime.now(UTC)
    gone = [record.describe(now) for record in revoke_tokens(_file(args), args.user_or_id)]
    if args.json:
        emit(sys.stdout, gone, as_json=True)
    else:
        for row in gone:
            sys.stdout.write(f"revoked {row['id']} ({row['user']}, {row['role']})\n")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokens", metavar="FILE", help=f"the token file (default: ${TOKENS_FILE_VAR})"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def register(commands: Any) -> None:
    """Add ``tokens`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser(
        "tokens",
        help="add, list and revoke API tokens",
        description=(
            "Manage the bearer tokens of kaizen serve, kept hashed in a JSON token file "
            f"(--tokens FILE or ${TOKENS_FILE_VAR}). A running server reloads the file "
            "when it changes."
        ),
    )
    sub = group.add_subparsers(dest="tokens_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("add", help="create a token for a user; prints it once")
    p.add_argument("user", metavar="USER", help="the user id the token authenticates")
    p.add_argument("--role", choices=ROLES, default=USER, help="default: %(default)s")
    p.add_argument(
        "--expires",
        metavar="WHEN",
        help="a duration (90s, 45m, 12h, 30d, 2w) or an ISO-8601 datetime (default: never)",
    )
    _common(p)
    p.set_defaults(handler=_add)

    p = sub.add_parser("list", help="list the tokens (never their hashes)")
    _common(p)
    p.set_defaults(handler=_list)

    p = sub.add_parser("revoke", help="remove the token with this id, or every token of USER")
    p.add_argument("user_or_id", metavar="USER|ID")
    _common(p)
    p.set_defaults(handler=_revoke)
