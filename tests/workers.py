"""Other app instances as OS processes: a worker script, a start barrier, a JSON result.

A worker script prints lines such as ``ready``, may wait for ``go`` on stdin, and
prints its result last as ``{"result": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

# Only guards against hangs; no test asserts on elapsed time.
PROCESS_TIMEOUT = 180


class Worker:
    """One worker process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def spawn(cls, script: Path, *argv: str) -> Worker:
        """Start ``script`` with ``argv`` under this interpreter."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, text: str) -> None:
        """Read stdout until the line ``text`` (fails the test if the worker ends first)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(PROCESS_TIMEOUT):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    await self._fail(f"exited before printing {text!r}")
                if line.decode().strip() == text:
                    return

    async def ready(self) -> None:
        """Wait until the worker stands at its start barrier."""
        await self.expect("ready")

    def go(self) -> None:
        """Release the worker from its start barrier."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def result(self) -> Any:
        """The worker's JSON result (fails the test if the worker failed)."""
        async with asyncio.timeout(PROCESS_TIMEOUT):
            out, err = await self.proc.communicate()
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise AssertionError(f"worker failed ({self.proc.returncode}): {err.decode()[-3000:]}")
        return json.loads(lines[-1])["result"]

    async def _fail(self, why: str) -> None:
        _, err = await self.proc.communicate()
        raise AssertionError(f"worker {why}: {err.decode()[-3000:]}")


async def together(workers: list[Worker]) -> list[Any]:
    """Release workers waiting at their barrier at once; their results, in order."""
    for worker in workers:
        await worker.ready()
    for worker in workers:
        worker.go()
    return list(await asyncio.gather(*(w.result() for w in workers)))
