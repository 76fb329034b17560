"""``kaizen migrate from-kaizen``: copy the tables of upstream Kaizen (or of the spec's
schema) into ours; see :mod:`kaizen.migrate`.

Exit 0 when every legacy row is in our tables, 7 when some could not be converted
(they are listed and left in place: fix them and run again).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from kaizen import service
from kaizen.cli._output import emit
from kaizen.migrate import MigrationReport, migrate_from_kaizen

__all__ = ["register"]

_COLUMNS = ("table", "read", "migrated", "present", "skipped")  # fits 100 columns


def _text(report: MigrationReport) -> str:
    lines = ["dry run: nothing was written"] if report.dry_run else []
    verb = "would rename" if report.dry_run else "renamed"
    lines += [
        f"{verb} {old} to {new} (the spec's layout, in our table's place)"
        for old, new in report.renamed
    ]
    if not report.tables:
        return "\n".join([*lines, "no Kaizen tables to migrate"])
    return "\n".join(lines)


def _rows(report: MigrationReport) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(t), "skipped": len(t.skipped)} for t in report.tables]


async def _from_kaizen(args: argparse.Namespace) -> int:
    async with service.Kaizen.open(args.database_url, create=False) as k:
        report = await migrate_from_kaizen(k.db, dry_run=args.dry_run)
    if args.json:
        data = dataclasses.asdict(report)
        data["renamed"] = [{"from": old, "to": new} for old, new in report.renamed]
        emit(
            sys.stdout,
            {**data, "migrated": report.migrated, "skipped": report.skipped},
            as_json=True,
        )
    else:
        head = _text(report)
        if head:
            sys.stdout.write(head + "\n")
        if report.tables:
            emit(sys.stdout, _rows(report), as_json=False, columns=_COLUMNS)
        for table in report.tables:
            for row in table.skipped:
                sys.stdout.write(f"skipped {table.table} {row.id or '(no id)'}: {row.reason}\n")
            if table.ignored_columns:
                names = ", ".join(table.ignored_columns)
                sys.stdout.write(f"{table.table}: columns not migrated: {names}\n")
    return 7 if report.skipped else 0


def register(commands: Any) -> None:
    """Add ``migrate`` and its subcommands to the ``kaizen`` command."""
    group = commands.add_parser("migrate", help="bring in data from other Kaizen installations")
    sub = group.add_subparsers(dest="migrate_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser(
        "from-kaizen",
        help="copy approval requests and sessions from upstream Kaizen's tables "
        "(or the spec's schema) into ours; idempotent, resumable",
        description="Copy the rows of external_agent_approval_request(s) and "
        "cross_channel_session(s) tables in the spec's TEXT schema or upstream Kaizen's "
        "layout into our tables (a legacy table in our table's place is renamed to "
        "<name>_kaizen_backup first). Rows already present are left alone; rows that "
        "cannot be converted are listed and left in place (exit 7).",
    )
    p.add_argument("--dry-run", action="store_true", help="write nothing; show what would be done")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_from_kaizen)
