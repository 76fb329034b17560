"""From ``kaizen demo`` to a decision in the inbox, as a new user would after ``./run demo``.

The demo runs in an empty directory (what ``./run demo`` runs: tests/packaging checks the
script calls it so); the ``kaizen serve`` line it printed runs as printed; headless
Chromium opens the printed inbox URL, signs in with the printed token and approves the
pending request through its confirm step; the database then holds it as approved by
the demo's approver, with its audit trail.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from cdp import Browser, Page

from demo_steps import DemoSteps, clean_env, parse_steps, printed_server
from kaizen import service
from servers import free_port


def _demo(work: Path) -> str:
    """``kaizen demo`` as ``./run demo`` runs it: the venv's script, in its directory."""
    kaizen = Path(sys.executable).with_name("kaizen")
    done = subprocess.run(
        [str(kaizen), "demo", "--port", str(free_port())],
        cwd=work,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _sign_in_and_approve(page: Page, steps: DemoSteps) -> None:
    page.navigate(steps.inbox)
    page.wait_for("document.activeElement?.id === 'token'", "focus on the token field")
    page.type_text(steps.token)
    page.press("Enter")
    page.wait_for("document.getElementById('user-name').textContent === 'lead-456'", "sign-in")
    item = f"document.querySelector('li[data-id={json.dumps(steps.request_id)}]')"
    page.wait_for(f"{item} !== null", "the demo's pending request in the list")
    assert "copilot-001" in page.evaluate(f"{item}.innerText")
    page.click(f"li[data-id={json.dumps(steps.request_id)}] button.approve")
    page.wait_for("document.activeElement?.matches('button.confirm-approve')", "confirm step")
    page.press("Enter")
    page.wait_for(f"{item} === null", "the approved request to leave the list")
    notice = "document.getElementById('notice').textContent"
    page.wait_for(
        f"{notice}.startsWith('Approved the request from user-123 for copilot-001')",
        "the approval's message",
    )


def _stored(url: str, request_id: str) -> tuple[dict[str, object], list[str]]:
    async def go() -> tuple[dict[str, object], list[str]]:
        async with service.Kaizen.open(url, create=False) as k:
            approval = await service.get_approval(k, request_id)
            events = await service.approval_audit(k, request_id)
        return approval, [e["event"] for e in events]

    return asyncio.run(go())


def test_the_demo_printed_steps_approve_its_request_in_the_inbox(
    chrome: Browser, tmp_path: Path
) -> None:
    work = tmp_path / "fresh"
    work.mkdir()
    steps = parse_steps(_demo(work))
    assert " serve --port " in steps.serve and "--tokens kaizen-tokens.json" in steps.serve
    with printed_server(steps, work, clean_env()), chrome.new_tab() as page:
        _sign_in_and_approve(page, steps)
    approval, events = _stored(f"sqlite:///{work / 'kaizen.db'}", steps.request_id)
    assert (approval["status"], approval["approved_by"]) == ("approved", "lead-456")
    assert events == ["requested", "approved"]
