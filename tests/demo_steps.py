"""The next steps ``kaizen demo`` prints, read back by the tests that follow them: the
``kaizen serve`` line, the approver's token, the inbox URL and the CLI approve line."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from servers import stop_process

__all__ = ["DemoSteps", "clean_env", "parse_steps", "printed_server"]

#: The environment a new user's shell would not have: the suite's database and token
#: settings, and what points Python at the checkout or another venv.
_NOT_INHERITED = ("KAIZEN_", "DATABASE_URL", "PYTHON", "VIRTUAL_ENV", "COV_CORE")


@dataclass(frozen=True)
class DemoSteps:
    """What the demo told the reader to do next."""

    request_id: str
    serve: str
    inbox: str
    token: str
    approve: str


def clean_env() -> dict[str, str]:
    """This process's environment without the test suite's database and token settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}


def _after(lines: list[str], heading: str) -> str:
    """The indented command on the line after the one starting with ``heading``."""
    index = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
    return lines[index + 1].strip()


def parse_steps(out: str) -> DemoSteps:
    """The next steps in the demo's output."""
    pending = re.search(r"user-123 requested approval (\S+) for copilot-001: pending", out)
    inbox = re.search(r"Open (http://127\.0\.0\.1:\d+/) and sign in as lead-456", out)
    assert pending and inbox, out
    lines = out.splitlines()
    return DemoSteps(
        request_id=pending[1],
        serve=_after(lines, "Serve the approvals API and the inbox:"),
        inbox=inbox[1],
        token=_after(lines, "Open http://"),
        approve=_after(lines, "Or approve the request from the command line:"),
    )


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kaizen serve exited ({proc.returncode}):\n{log.read_text()}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(f"{url}healthz", timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"kaizen serve did not become healthy:\n{log.read_text()}")


@contextlib.contextmanager
def printed_server(steps: DemoSteps, cwd: Path, env: dict[str, str]) -> Iterator[Path]:
    """Run the printed ``kaizen serve`` line as printed, in ``cwd``, until it answers on
    the printed inbox URL; yield its log file. The server is stopped afterwards."""
    log = cwd.parent / f"{cwd.name}-serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            shlex.split(steps.serve), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_healthy(steps.inbox, proc, log)
        yield log
    finally:
        stop_process(proc)
    assert steps.token not in log.read_text(errors="replace")  # never logged
