"""Migration from the tables of upstream Kailash Kaizen (and of the spec's schema).

Two legacy layouts hold the same columns:

- the spec's DDL (``external_agent_approval_request``, ``cross_channel_session``:
  JSON in ``TEXT``, ``TIMESTAMP`` or ISO text times), which uses our tables' names;
- the upstream library's own tables (``external_agent_approval_requests``,
  ``cross_channel_sessions``: every column text, ISO timestamps, ``""`` for unset).

**Copy, never convert in place.** Every convertible row is copied into our
tables through our storages, so each request gets its ``requested`` audit event
(the chain and the seal ``verify_audit`` checks) and each session is one
:class:`~kaizen.integrations.nexus.SessionStorage` loads. The legacy tables are
left as they are: nothing is lost if a run stops half-way, and a row that cannot
be converted (invalid JSON, an empty user id, no approvers...) is reported and
stays where it is, to fix and migrate by running again. A legacy table in our
table's place (the spec's names) would keep DataFlow from starting ("stored as
'text' but the model declares json"), so it is first renamed aside, to
``<name>_kaizen_backup`` (one statement), then copied like the others.

The run is idempotent and resumable: a row whose id our table holds already is
counted as present and not touched, so a second run changes nothing and an
interrupted one carries on. Original times survive (``created_at``,
``approved_at``, a session's ``last_accessed`` and ``expires_at``); naive
times are taken as UTC; decided requests keep their decision. Migrated requests
have no deadline (the legacy tables have none). ``dry_run`` reads and converts
only: it writes nothing, and reports what a real run would do.

Example:
    >>> async with DataFlow("postgresql://localhost/app") as db:  # doctest: +SKIP
    ...     report = await migrate_from_kaizen(db, dry_run=True)
"""

from kaizen.migrate._run import (
    BACKUP_SUFFIX,
    MigrationReport,
    SkippedRow,
    TableReport,
    migrate_from_kaizen,
)

__all__ = ["BACKUP_SUFFIX", "MigrationReport", "SkippedRow", "TableReport", "migrate_from_kaizen"]
