"""One migration run: find the legacy tables, set aside those in our tables' place,
then copy every convertible row through our storages."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from dataflow import DataFlow, DuplicateKeyError, SchemaError, ValidationError
from kaizen.governance._schema import REQUEST_TABLE
from kaizen.governance.storage import ExternalAgentApprovalStorage
from kaizen.integrations.nexus.storage import TABLE as SESSION_TABLE
from kaizen.integrations.nexus.storage import SessionStorage
from kaizen.migrate._convert import Unconvertible, to_request, to_session
from kaizen.migrate._tables import Tables, open_tables

__all__ = ["BACKUP_SUFFIX", "MigrationReport", "SkippedRow", "TableReport", "migrate_from_kaizen"]

#: Suffix of the name a legacy table in our table's place is renamed to.
BACKUP_SUFFIX = "_kaizen_backup"
_PAGE = 500


@dataclass
class SkippedRow:
    """A legacy row left where it is, and why.

    Attributes:
        id: Its id (None when it has none).
        reason: Why it could not be migrated.
    """

    id: str | None
    reason: str


@dataclass
class TableReport:
    """What the migration did (or, in a dry run, would do) with one legacy table.

    Attributes:
        table: The legacy table read.
        into: Our table its rows go to.
        read: Rows read.
        migrated: Rows copied into ``into`` (in a dry run: that would be).
        present: Rows whose id ``into`` holds already (not overwritten).
        skipped: Rows that cannot be converted, left untouched.
        ignored_columns: Columns of ``table`` the migration does not know (not copied).
    """

    table: str
    into: str
    read: int = 0
    migrated: int = 0
    present: int = 0
    skipped: list[SkippedRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


@dataclass
class MigrationReport:
    """The outcome of :func:`migrate_from_kaizen`.

    Attributes:
        dry_run: True when nothing was written.
        renamed: ``(old, new)`` names of the tables set aside (in a dry run: to be).
        tables: One report per legacy table found.
    """

    dry_run: bool
    renamed: list[tuple[str, str]] = field(default_factory=list)
    tables: list[TableReport] = field(default_factory=list)

    @property
    def migrated(self) -> int:
        """Rows migrated, over every table."""
        return sum(t.migrated for t in self.tables)

    @property
    def skipped(self) -> int:
        """Rows left behind, over every table."""
        return sum(len(t.skipped) for t in self.tables)


Save = Callable[[Any], Awaitable[str | None]]  # None: saved; else why not ("present": it is)


@dataclass(frozen=True)
class _Kind:
    """One of our tables and the legacy tables it takes rows from."""

    target: str
    marker: str  # a column of ours the legacy layout lacks
    upstream: str  # the upstream library's table name
    columns: tuple[str, ...]
    convert: Callable[[dict[str, Any]], Any]

    @property
    def backup(self) -> str:
        return self.target + BACKUP_SUFFIX


_REQUESTS = _Kind(
    REQUEST_TABLE,
    "audit_head",
    "external_agent_approval_requests",
    (
        "id",
        "external_agent_id",
        "requested_by",
        "approvers_json",
        "status",
        "approval_reason",
        "request_metadata_json",
        "created_at",
        "updated_at",
        "approved_at",
        "approved_by",
        "rejection_reason",
    ),
    to_request,
)
_SESSIONS = _Kind(
    SESSION_TABLE,
    "ttl_seconds",
    "cross_channel_sessions",
    (
        "id",
        "user_id",
        "last_accessed",
        "expires_at",
        "state_json",
        "channel_activity_json",
        "memory_pool_id",
        "created_at",
        "updated_at",
    ),
    to_session,
)
_PRESENT = "present"


async def _set_aside(tables: Tables, kind: _Kind, report: MigrationReport) -> list[str]:
    """Rename a legacy table in our table's place (not in a dry run); the tables to read.

    Raises:
        SchemaError: Our table's place and the backup's name are both taken by
            legacy tables: which holds what is for a person to decide.
    """
    found = await tables.columns(kind.target)
    sources = []
    if found is not None and kind.marker not in found:
        if await tables.columns(kind.backup) is not None:
            raise SchemaError(
                f"{kind.target} is in the legacy layout and {kind.backup} exists too: "
                "rename or drop one of them by hand, then run the migration again"
            )
        report.renamed.append((kind.target, kind.backup))
        if report.dry_run:
            sources.append(kind.target)
        else:
            await tables.rename(kind.target, kind.backup)
    for name in (kind.backup, kind.upstream):
        if name not in sources and await tables.columns(name) is not None:
            sources.append(name)
    return sources


async def migrate_from_kaizen(db: DataFlow, *, dry_run: bool = False) -> MigrationReport:
    """Bring the approval requests and sessions of legacy Kaizen tables into ours.

    See :mod:`kaizen.migrate` for what is read and how.

    Args:
        db: The database holding the legacy tables, and ours.
        dry_run: Read and convert only: write nothing, report what would be done.

    Returns:
        The counts per legacy table, the rows left behind and why.

    Raises:
        SchemaError: A legacy table and its backup name are both taken.
        DataFlowError: The database failed (a re-run resumes where this one stopped).
    """
    saves: dict[_Kind, Save] = {
        _REQUESTS: functools.partial(_save_request, ExternalAgentApprovalStorage(db)),
        _SESSIONS: functools.partial(_save_session, SessionStorage(db)),
    }
    report = MigrationReport(dry_run=dry_run)
    async with open_tables(db) as tables:
        plans = [(kind, await _set_aside(tables, kind, report)) for kind in saves]
        if not dry_run and any(sources for _, sources in plans):
            await db.initialize()  # our tables, in their place now free
        for kind, sources in plans:
            ours = not dry_run or _is_ours(await tables.columns(kind.target), kind)
            seen: set[str] = set()
            for source in sources:
                copy = _Copy(tables, kind, report, saves[kind], ours, seen)
                report.tables.append(await copy.run(source))
    return report


def _is_ours(columns: set[str] | None, kind: _Kind) -> bool:
    return columns is not None and kind.marker in columns


class _Copy:
    """Copying the rows of legacy tables into one of ours, page by page."""

    def __init__(
        self,
        tables: Tables,
        kind: _Kind,
        report: MigrationReport,
        save: Save,
        ours: bool,
        seen: set[str],
    ) -> None:
        self.tables, self.kind, self.save = tables, kind, save
        self.dry_run = report.dry_run
        self.ours = ours  # whether our table exists (else nothing is present in it)
        self.seen = seen  # ids migrated or found present, over every source

    async def run(self, source: str) -> TableReport:
        found = await self.tables.columns(source) or set()
        done = TableReport(source, self.kind.target)
        done.ignored_columns = sorted(found - set(self.kind.columns))
        if "id" not in found:
            done.skipped.append(SkippedRow(None, f"{source} has no id column: nothing read"))
            return done
        columns = [c for c in self.kind.columns if c in found]
        for _ in range(await self.tables.count_null_ids(source)):
            done.read += 1
            done.skipped.append(SkippedRow(None, "the id is NULL"))
        after: Any = None
        while True:
            rows, after = await self.tables.page(source, columns, after, _PAGE)
            await self._rows(rows, done)
            if after is None:
                return done

    async def _rows(self, rows: list[dict[str, Any]], done: TableReport) -> None:
        ids = [r["id"] for r in rows if isinstance(r["id"], str)]
        present = await self.tables.present(self.kind.target, ids) if self.ours else set()
        for row in rows:
            done.read += 1
            key = row["id"]
            if key in present or key in self.seen:
                self.seen.add(key)
                done.present += 1
                continue
            try:
                item = self.kind.convert(row)
            except Unconvertible as exc:
                done.skipped.append(SkippedRow(str(key), str(exc)))
                continue
            outcome = None if self.dry_run else await self.save(item)
            if outcome is None:
                done.migrated += 1
            elif outcome == _PRESENT:
                done.present += 1
            else:
                done.skipped.append(SkippedRow(key, outcome))
                continue
            self.seen.add(key)


async def _save_request(storage: ExternalAgentApprovalStorage, request: Any) -> str | None:
    """Save through the storage: its ``requested`` event seals the request."""
    try:
        await storage.save(request)
    except DuplicateKeyError:
        if await storage.load(request.id) is not None:
            return _PRESENT
        return "an audit trail with this id exists (a deleted request's): left in place"
    except ValidationError as exc:  # the database refused a value (e.g. a time before 1000)
        return str(exc)
    return None


async def _save_session(storage: SessionStorage, session: Any) -> str | None:
    try:
        await storage.save(session)
    except DuplicateKeyError:
        return _PRESENT
    except ValidationError as exc:
        return str(exc)
    return None
