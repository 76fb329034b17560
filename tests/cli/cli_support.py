"""Helpers of the CLI tests: run the command in-process, seed and read the database
with managers of their own (another process when it matters)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from kaizen import service
from kaizen.cli import main
from kaizen.governance import ExternalAgentApprovalRequest

__all__ = ["load", "request_elsewhere", "run", "seed_requests", "usage_error"]

_REQUESTER = """
import asyncio, json, sys
from kaizen import service

async def go() -> None:
    url, agent, metadata = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    async with service.Kaizen.open(url) as k:
        print(await k.approvals.request_approval(agent, "user-1", metadata))

asyncio.run(go())
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``kaizen argv`` in-process: its exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``kaizen argv``, which must fail on its arguments (exit 2); its stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


def request_elsewhere(url: str, agent: str, metadata: dict[str, Any] | None = None) -> str:
    """Have another process (a manager with no requirement of its own) request an
    approval for ``agent`` as ``user-1``; the request's id."""
    done = subprocess.run(
        [sys.executable, "-c", _REQUESTER, url, agent, json.dumps(metadata or {})],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def seed_requests(url: str, agent: str, approvers: list[str], n: int, **policy: Any) -> list[str]:
    """``n`` requests by ``user-1`` for ``agent``, routed by an in-process policy."""

    async def go() -> list[str]:
        async with service.Kaizen.open(url) as k:
            k.approvals.set_approvers(agent, approvers, **policy)
            return [
                await k.approvals.request_approval(agent, "user-1", {"cost": 5, "i": i})
                for i in range(n)
            ]

    return asyncio.run(go())


def load(url: str, request_id: str) -> ExternalAgentApprovalRequest:
    """The request as stored, read by a manager of its own."""

    async def go() -> ExternalAgentApprovalRequest:
        async with service.Kaizen.open(url, create=False) as k:
            request = await k.approvals.get_request(request_id)
        assert request is not None
        return request

    return asyncio.run(go())
