"""The ``kaizen`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kaizen import __version__

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``kaizen`` command."""
    parser = argparse.ArgumentParser(prog="kaizen", description=__doc__)
    parser.add_argument("--version", action="version", version=f"kaizen {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``kaizen`` command; return its exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stdout)
    return 0
