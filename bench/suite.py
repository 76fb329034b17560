"""What a group of benchmarked operations provides, and shared helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from bench.runner import Op

__all__ = ["HOT_ROWS", "Suite", "ago", "now"]

#: Rows sharing the queried key (user, agent, approver...), at every table size,
#: so a ``limit=100`` list returns a full page at 1,000 and at 1,000,000 rows.
HOT_ROWS = 150


def now() -> datetime:
    return datetime.now(UTC)


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


class Suite(Protocol):
    """A group of operations over one set of tables."""

    group: str

    async def populate(self, rows: int) -> None:
        """Fill the tables with ``rows`` representative rows (untimed)."""
        ...

    def ops(self) -> list[Op]:
        """The operations at the base table size."""
        ...

    def scale_ops(self) -> list[Op]:
        """The list/count/cleanup operations re-measured at the large size."""
        ...

    async def bulk_load(self, rows: int) -> None:
        """Grow the tables to ``rows`` rows with the database's fastest loader."""
        ...
