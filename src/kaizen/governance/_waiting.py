"""How a waiter learns that a request may have changed: notifications or backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Waiter", "backoff_waiter", "queue_waiter"]

#: ``await wait(seconds)``: returns after at most ``seconds``, earlier on a change.
Waiter = Callable[[float], Awaitable[None]]


def queue_waiter(queue: asyncio.Queue[str], request_id: str) -> Waiter:
    """Wait for a notification naming ``request_id`` (or ``*``: several requests changed)."""

    async def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    payload = await queue.get()
            except TimeoutError:
                return
            if payload in (request_id, "*"):
                return

    return wait


def backoff_waiter() -> Waiter:
    """Sleep 50 ms, then twice as long each time, up to 1 s (for databases without NOTIFY)."""

    delay = [0.05]

    async def wait(seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, delay[0])))
        delay[0] = min(delay[0] * 2, 1.0)

    return wait
