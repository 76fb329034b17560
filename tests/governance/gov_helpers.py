"""Helpers of the governance tests: requirements, and other app instances as OS processes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from kaizen.governance import ApprovalLevel, ApprovalRequirement

WORKER = Path(__file__).with_name("gov_worker.py")
# Only guards against hangs; no test asserts on elapsed time.
PROCESS_TIMEOUT = 180


def custom(*approvers: str, timeout: float = 3600) -> ApprovalRequirement:
    """A CUSTOM requirement with these approvers."""
    return ApprovalRequirement(
        ApprovalLevel.CUSTOM, custom_approvers=list(approvers), approval_timeout_seconds=timeout
    )


class Worker:
    """Another app instance: a Python process running ``gov_worker.py``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, command: str, **args: Any) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            url,
            command,
            json.dumps(args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def expect(self, text: str) -> None:
        """Read stdout until the line ``text``."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(PROCESS_TIMEOUT):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    await self._fail(f"exited before printing {text!r}")
                if line.decode().strip() == text:
                    return

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


async def run_worker(url: str, command: str, **args: Any) -> Any:
    """Run one worker command to completion and return its result."""
    return await (await Worker.start(url, command, **args)).result()
