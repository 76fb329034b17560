"""The ``kaizen`` command: a thin layer over plain async functions that return data.

Exit codes: 0 success, 1 other errors, 2 usage or configuration (bad arguments, a
malformed URL, an unknown option...), 3 unknown id, 4 already decided or already voted,
5 not authorized, 6 database unavailable (unreachable, timed out, refused: unknown
database, access denied; or no SQLite file for a command that only reads), 7 bad input,
8 the audit trail found tampering; ``kaizen serve`` could not start: 9 cannot listen on
the address (in use, permission denied, not local), 10 no usable tokens (token file
unreadable or malformed, none configured), 11 the server extra is not installed (the
same for ``kaizen mcp`` and its ``mcp`` extra);
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from kaizen import __version__
from kaizen.cli._output import WIDTH, use_wide

__all__ = ["DEFAULT_DATABASE_URL", "main"]

DEFAULT_DATABASE_URL = "sqlite:///kaizen.db"

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _database_url(args: argparse.Namespace) -> str:
    return (
        getattr(args, "db", None)
        or os.environ.get("KAIZEN_DATABASE_URL")
        or os.environ.get("DATABASE_URL")  # what DataFlow() itself reads
        or DEFAULT_DATABASE_URL
    )


_DB_HELP = f"database URL (default: $KAIZEN_DATABASE_URL, $DATABASE_URL or {DEFAULT_DATABASE_URL})"


_COMMANDS = (
    "demo",
    "approvals",
    "policies",
    "delegations",
    "sessions",
    "maintain",
    "serve",
    "mcp",
    "tokens",
    "migrate",
)


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of every runnable subcommand below ``parser``."""
    found = []
    for action in parser._actions:  # argparse offers no public walk of its subcommands
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to one parser
                found += _leaf_parsers(sub) or [sub]
    return found


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kaizen`` command."""
    parser = argparse.ArgumentParser(
        prog="kaizen",
        description="Kaizen persistence: approvals, policies, delegations, sessions, maintenance.",
    )
    parser.add_argument("--version", action="version", version=f"kaizen {__version__}")
    parser.add_argument("--db", metavar="URL", help=_DB_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        importlib.import_module(f"kaizen.cli.{name}").register(commands)
    for leaf in _leaf_parsers(parser):  # --db also after the subcommand
        if leaf.prog.startswith("kaizen tokens"):  # a token file, no database
            continue
        if not any("--db" in a.option_strings for a in leaf._actions):
            leaf.add_argument("--db", metavar="URL", default=argparse.SUPPRESS, help=_DB_HELP)
    for leaf in _leaf_parsers(parser):  # the commands printing data (--json) have --wide
        options = {o for a in leaf._actions for o in a.option_strings}
        if "--json" in options and "--wide" not in options:
            leaf.add_argument(
                "--wide",
                action="store_true",
                help=f"show everything: cut no value to fit {WIDTH} columns, add columns",
            )
    return parser


def _error_code(exc: BaseException) -> int | None:
    """Exit code for an error we report in one line, or None for a real crash."""
    from kaizen.outcomes import outcome_of

    outcome = outcome_of(exc)
    if outcome is not None:
        return outcome.exit_code
    return 7 if isinstance(exc, ValueError) else None


def run_async(handler: Handler, args: argparse.Namespace) -> int:
    """Run a command's coroutine; turn our errors into one line on stderr."""
    try:
        return asyncio.run(handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _error_code(exc)
        if code is None:
            raise
        sys.stderr.write(f"kaizen: error: {exc}\n")
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kaizen`` command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Any = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stdout)
        return 0
    args.database_url = _database_url(args)
    with use_wide(getattr(args, "wide", False)):
        return run_async(handler, args)
