"""PostgreSQL LISTEN on a dedicated connection that survives restarts and failovers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflow.dialects.pool import PooledDialect

__all__ = ["PROBE_SECONDS", "Listener"]

#: Seconds between two probes of an idle LISTEN connection (a half-open one is deaf).
PROBE_SECONDS = 15.0
logger = logging.getLogger("dataflow")


class Listener:
    """A dedicated LISTEN connection that comes back by itself after the server did.

    When the connection terminates (server restart, failover, network loss), or
    stops answering the probe sent every :data:`PROBE_SECONDS`, it reconnects
    with backoff and puts ``None`` on the queue: notifications sent while it was
    away are lost, so listeners should re-read what they watch.
    """

    def __init__(self, dialect: PooledDialect, channel: str) -> None:
        self.dialect = dialect
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._raw: Any = None
        self._lost = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None

    def _deliver(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.queue.put_nowait(payload)

    def _on_lost(self, _conn: Any) -> None:
        self._lost.set()

    async def _connect(self) -> None:
        """Open the connection and LISTEN, within ``connect_timeout``; our errors only."""
        raw = (await self.dialect.connect()).raw
        self._lost.clear()
        try:
            async with asyncio.timeout(self.dialect.connect_timeout):
                raw.add_termination_listener(self._on_lost)
                await raw.add_listener(self.channel, self._deliver)
        except BaseException as exc:
            raw.terminate()
            if isinstance(exc, Exception):
                raise self.dialect.connection_error(exc) from exc
            raise
        self._raw = raw

    async def start(self) -> None:
        """Listen now (raising our error if the database cannot be reached)."""
        await self._connect()
        self._keeper = self.loop.create_task(self._keep())

    async def _keep(self) -> None:
        while True:
            await self._until_lost()
            with contextlib.suppress(Exception):
                self._raw.terminate()
            delay = 0.05
            while True:
                try:
                    await self._connect()
                    break
                except Exception as exc:  # down still: try again, less often
                    logger.debug("LISTEN %s: reconnecting failed: %s", self.channel, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            self.queue.put_nowait(None)

    async def _until_lost(self) -> None:
        """Return when the connection terminated or no longer answers a probe."""
        while True:
            try:
                async with asyncio.timeout(PROBE_SECONDS):
                    await self._lost.wait()
                return
            except TimeoutError:
                pass
            try:
                async with asyncio.timeout(self.dialect.connect_timeout):
                    await self._raw.fetchval("SELECT 1")
            except Exception:  # half-open, frozen, gone
                return

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        with contextlib.suppress(Exception):
            await self._raw.close(timeout=2)
