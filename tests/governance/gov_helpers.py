"""Helpers of the governance tests: requirements, and other app instances as OS processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import workers
from kaizen.governance import ApprovalLevel, ApprovalRequirement

WORKER = Path(__file__).with_name("gov_worker.py")


def custom(*approvers: str, timeout: float = 3600) -> ApprovalRequirement:
    """A CUSTOM requirement with these approvers."""
    return ApprovalRequirement(
        ApprovalLevel.CUSTOM, custom_approvers=list(approvers), approval_timeout_seconds=timeout
    )


class Worker(workers.Worker):
    """Another app instance: a Python process running ``gov_worker.py``."""

    @classmethod
    async def start(cls, url: str, command: str, **args: Any) -> workers.Worker:
        return await cls.spawn(WORKER, url, command, json.dumps(args))


async def run_worker(url: str, command: str, **args: Any) -> Any:
    """Run one worker command to completion and return its result."""
    return await (await Worker.start(url, command, **args)).result()
