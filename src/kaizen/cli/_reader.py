"""``--as USER``: read as one user would, not as the operator at the database."""

from __future__ import annotations

import argparse

from kaizen.access import Viewer

__all__ = ["add_as_flag", "viewer_of"]


def add_as_flag(parser: argparse.ArgumentParser, sees: str) -> None:
    """Add ``--as USER`` to ``parser``; ``sees`` says what that user sees."""
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USER",
        help=f"read as this user: only {sees} (default: everything)",
    )


def viewer_of(args: argparse.Namespace) -> Viewer | None:
    """The reader ``--as`` names, or None for the operator."""
    return Viewer(args.as_user) if args.as_user is not None else None
