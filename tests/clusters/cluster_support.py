"""Helpers of the cluster tests: worker processes and reading a cluster consistently."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

WORKER = Path(__file__).with_name("cluster_worker.py")
# Only guards against hangs; no test asserts on elapsed time.
PROCESS_TIMEOUT = 180


class Worker:
    """An app instance: a Python process running ``cluster_worker.py``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, command: str, **args: Any) -> Worker:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            command,
            json.dumps(args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def ready(self) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(PROCESS_TIMEOUT):
            line = await self.proc.stdout.readline()
        if line.decode().strip() != "ready":
            await self.result()  # reports why it did not get there
            raise AssertionError(f"worker said {line!r} instead of 'ready'")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def result(self) -> Any:
        async with asyncio.timeout(PROCESS_TIMEOUT):
            out, err = await self.proc.communicate()
        lines = out.decode().strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise AssertionError(f"worker failed ({self.proc.returncode}): {err.decode()[-3000:]}")
        return json.loads(lines[-1])["result"]


async def together(workers: list[Worker]) -> list[Any]:
    """Release workers waiting at their barrier at once; their results, in order."""
    for worker in workers:
        await worker.ready()
    for worker in workers:
        worker.go()
    return list(await asyncio.gather(*(w.result() for w in workers)))


def causal(url: str) -> str:
    """``url`` reading what every node committed before (Galera's ``wsrep_sync_wait``)."""
    return url + ("&" if "?" in url else "?") + "wsrep_sync_wait=1"
