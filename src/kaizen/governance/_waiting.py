"""How a waiter learns that a request may have changed: notifications or backoff.

On PostgreSQL every decision sends a NOTIFY in its transaction. One listening
connection per storage and event loop serves all waiters; it is opened for the
first waiter and closed after the last. When it is lost (a server restart, a
failover) it comes back by itself and wakes every waiter, since announcements
made meanwhile were missed. Should it fail for good, waiters still re-read the
request at least every few seconds (the manager caps each wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from dataflow import DataFlow

__all__ = ["ANY", "Notifications", "Waiter", "backoff_waiter"]

logger = logging.getLogger("kaizen.governance")
#: ``await wait(seconds)``: returns after at most ``seconds``, earlier on a change.
Waiter = Callable[[float], Awaitable[None]]
#: Payload meaning "several requests changed" (a timeout sweep).
ANY = "*"


def backoff_waiter() -> Waiter:
    """Sleep 50 ms, then twice as long each time, up to 1 s (for databases without NOTIFY)."""
    delay = [0.05]

    async def wait(seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, delay[0])))
        delay[0] = min(delay[0] * 2, 1.0)

    return wait


class _Listener:
    """One LISTEN connection of one event loop, dispatching payloads to waiters."""

    def __init__(self) -> None:
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def dispatch(self, payload: str | None) -> None:
        # None: the listening connection came back after a loss, and what was
        # announced meanwhile is unknown: every waiter re-reads.
        if payload is None or payload == ANY:
            targets = list(self.waiters.values())
        else:
            targets = [self.waiters.get(payload, set())]
        for events in targets:
            for event in events:
                event.set()

    async def run(self, db: DataFlow, channel: str, ready: asyncio.Event) -> None:
        try:
            async with db.listen(channel) as queue:
                ready.set()
                while True:
                    self.dispatch(await queue.get())
        finally:
            ready.set()  # never leave a subscriber waiting for a dead listener


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("approval notifications stopped; waiters poll instead: %r", task.exception())


class Notifications:
    """Shared subscriptions to a NOTIFY channel.

    Args:
        db: The database (its dialect must support notifications).
        channel: The channel decisions are announced on.
    """

    def __init__(self, db: DataFlow, channel: str) -> None:
        self._db = db
        self._channel = channel
        self._listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Listener] = (
            weakref.WeakKeyDictionary()
        )

    def _listener(self) -> _Listener:
        loop = asyncio.get_running_loop()
        listener = self._listeners.get(loop)
        if listener is None:
            listener = self._listeners[loop] = _Listener()
        if listener.task is None or listener.task.done():
            listener.ready = asyncio.Event()
            listener.task = loop.create_task(listener.run(self._db, self._channel, listener.ready))
            listener.task.add_done_callback(_log_failure)
        return listener

    @contextlib.asynccontextmanager
    async def subscribe(self, request_id: str) -> AsyncIterator[Waiter]:
        """Yield ``wait(seconds)`` that returns early when ``request_id`` is announced.

        The listener is listening when this yields, so no announcement made
        after it can be missed.
        """
        listener = self._listener()
        ready, event = listener.ready, asyncio.Event()
        listener.waiters.setdefault(request_id, set()).add(event)
        try:
            await ready.wait()

            async def wait(seconds: float) -> None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, seconds)):
                        await event.wait()
                event.clear()

            yield wait
        finally:
            await self._unsubscribe(listener, request_id, event)

    async def _unsubscribe(
        self, listener: _Listener, request_id: str, event: asyncio.Event
    ) -> None:
        events = listener.waiters.get(request_id, set())
        events.discard(event)
        if not events:
            listener.waiters.pop(request_id, None)
        if not listener.waiters and listener.task is not None:
            task, listener.task = listener.task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
