"""Retrying writes that lost a race with another transaction.

A :class:`~dataflow.errors.ConcurrencyError` (a deadlock victim, a
serialization failure, a lock wait that timed out, a cluster's certification
conflict) means the database rolled the work back: running it again is safe
when the work is one operation or one transaction that the retry repeats
whole. Nothing else is retried here: a lost connection may have committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from dataflow.errors import ConcurrencyError, ValidationError

__all__ = ["RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with jittered exponential backoff.

    The defaults ride out a hot row on a Galera cluster (writers on several
    nodes updating one row at full speed: a call may lose certification many
    times in a row); on a single server a lost race almost always wins the
    second try.

    Args:
        attempts: Tries in all (1: no retry).
        base_delay: Seconds before the second try; doubled for each later one.
        max_delay: Longest wait between two tries.

    Example:
        >>> policy = RetryPolicy(attempts=5)
        >>> await policy.run(lambda: db.update_where(Task, {"id": "t"}, {"n": 2}))  # doctest: +SKIP
    """

    attempts: int = 20
    base_delay: float = 0.005
    max_delay: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValidationError("attempts must be an int")
        if not 1 <= self.attempts <= 100:
            raise ValidationError("attempts must be between 1 and 100")
        for name in ("base_delay", "max_delay"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 <= value <= 60
            ):
                raise ValidationError(f"{name} must be a number of seconds from 0 to 60")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (from 1): full jitter."""
        import random  # not at import time: only a lost race needs it

        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    async def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()``; after a :class:`~dataflow.errors.ConcurrencyError`, again.

        Raises:
            ConcurrencyError: Every try lost (the last error).
        """
        for attempt in range(1, self.attempts):
            try:
                return await fn()
            except ConcurrencyError:
                await asyncio.sleep(self.delay(attempt))
        return await fn()
