"""Helpers of the session tests: a fake clock and agent processes (other app instances)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

AGENT = Path(__file__).with_name("session_agent.py")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
REPLY_TIMEOUT = 120


class Clock:
    """A settable clock for managers: ``clock()`` is the time, ``advance()`` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class AgentProcess:
    """Another app instance: a Python process running ``session_agent.py``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, tz: str | None = None) -> AgentProcess:
        env = dict(os.environ)
        if tz is not None:
            env["TZ"] = tz
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(AGENT),
            url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        agent = cls(proc)
        assert await agent._reply() == "ready"
        return agent

    async def send(self, op: str, **args: Any) -> None:
        """Send a command without waiting for its answer (see :meth:`result`)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()

    async def result(self) -> Any:
        """The answer to the oldest command sent."""
        return await self._reply()

    async def call(self, op: str, **args: Any) -> Any:
        """Run one command and return its result."""
        await self.send(op, **args)
        return await self._reply()

    async def _reply(self) -> Any:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), REPLY_TIMEOUT)
        if not line:
            assert self.proc.stderr is not None
            err = await self.proc.stderr.read()
            raise AssertionError(f"agent died: {err.decode(errors='replace')}")
        message = json.loads(line)
        if "error" in message:
            raise AssertionError(f"agent failed: {message['error']}")
        return message["ok"]

    async def stop(self) -> None:
        """Close stdin (the agent exits cleanly) and wait, killing it if it hangs."""
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


#: ``await start_agents(n)`` or ``await start_agents(tzs=[...])`` (the fixture's type).
StartAgents = Callable[..., Awaitable[list[AgentProcess]]]
