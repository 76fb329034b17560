"""End to end: ``kaizen serve`` in a subprocess, the inbox driven in headless Chromium.

An approver signs in with a token, approves one request and rejects another with
the keyboard, and sees a request decided by another process leave the list
without a reload. The database and the audit trail must then agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import HASHED, TOKENS, status_of
from cdp import Page, chromium

from kaizen import service
from kaizen.service import Kaizen

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REASON = "Not during the freeze, sorry"


@pytest.fixture
def chromium_path() -> str:
    """The Chromium executable; missing fails the test under ``CI=true``, else skips it."""
    found = shutil.which(CHROMIUM)
    if found is None:
        message = f"headless Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(db_url: str, port: int, tokens: Path) -> list[str]:
    """The ``kaizen serve`` command line (the CLI's entry point, run by this interpreter)."""
    entry = "import sys; from kaizen.cli import main; sys.exit(main())"
    return [sys.executable, "-c", entry, "--db", db_url, "serve", "--port", str(port),
            "--tokens", str(tokens), "--base-url", f"http://127.0.0.1:{port}"]  # fmt: skip


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kaizen serve exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"kaizen serve did not become healthy:\n{log.read_text()}")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """``kaizen serve`` on a free port against the test database; yields its URL."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(HASHED))
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_API_TOKENS")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            server_command(db_url, port, tokens), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # The server must never write a token to its log.
    text = log.read_text(errors="replace")
    assert not any(token in text for token in TOKENS.values())


def _run(db_url: str, work: Any) -> Any:
    async def go() -> Any:
        async with Kaizen.open(db_url) as kaizen:
            return await work(kaizen)

    return asyncio.run(go())


def _seed(db_url: str) -> dict[str, str]:
    async def work(kaizen: Kaizen) -> dict[str, str]:
        manager = kaizen.approvals
        ids = {}
        for agent in ("copilot-deploy", "copilot-billing", "copilot-wiki"):
            manager.set_approvers(agent, ["lead-456", "admin-1"], reason=f"{agent} needs approval")
            ids[agent] = await manager.request_approval(
                agent, "user-123", {"environment": "production", "cost": 15.0}
            )
        manager.set_approvers("copilot-other", ["admin-1"])
        ids["copilot-other"] = await manager.request_approval("copilot-other", "user-9", {})
        return ids

    result: dict[str, str] = _run(db_url, work)
    return result


def _item(request_id: str) -> str:
    return f"document.querySelector('li[data-id=\"' + CSS.escape({json.dumps(request_id)}) + '\"]')"


def _sign_in(page: Page, url: str) -> None:
    page.navigate(url)
    focused = "document.activeElement && document.activeElement.id === 'token'"
    page.wait_for(focused, "focus on the token field")
    page.type_text("not-a-token")
    page.press("Enter")
    page.wait_for(
        "document.getElementById('error').textContent.includes('not accepted')", "the 401 alert"
    )
    assert page.evaluate("sessionStorage.length") == 0
    page.wait_for(focused, "focus back on the token field")
    page.type_text(TOKENS["lead-456"])
    page.press("Enter")
    page.wait_for("document.getElementById('user-name').textContent === 'lead-456'", "sign-in")
    page.wait_for("document.querySelectorAll('#requests > li').length === 3", "3 requests")
    assert page.evaluate("document.getElementById('error').hidden") is True


def _approve(page: Page, request_id: str) -> None:
    page.evaluate(f"{_item(request_id)}.querySelector('button.approve').focus()")
    page.press("Enter")
    page.wait_for(f"{_item(request_id)} === null", "the approved request to leave")
    page.wait_for(
        "document.getElementById('announcer').textContent.startsWith('Approved')", "announcement"
    )


def _reject(page: Page, request_id: str) -> None:
    page.evaluate(f"{_item(request_id)}.querySelector('button.reject').focus()")
    page.press("Enter")
    page.wait_for(
        "document.activeElement && document.activeElement.classList.contains('reject-reason')",
        "the reason field to take focus",
    )
    label = page.evaluate("document.activeElement.labels[0].textContent")
    assert label == "Reason for rejection"
    page.type_text(REASON)
    page.evaluate(f"{_item(request_id)}.querySelector('button.confirm-reject').focus()")
    page.press("Enter")
    page.wait_for(f"{_item(request_id)} === null", "the rejected request to leave")


def _stored(db_url: str, ids: dict[str, str]) -> dict[str, Any]:
    async def work(kaizen: Kaizen) -> dict[str, Any]:
        out: dict[str, Any] = {"verify": await service.verify_audit(kaizen)}
        for agent, request_id in ids.items():
            out[agent] = (
                await service.get_approval(kaizen, request_id),
                await service.approval_audit(kaizen, request_id),
            )
        return out

    result: dict[str, Any] = _run(db_url, work)
    return result


def _assert_database_and_audit_agree(stored: dict[str, Any]) -> None:
    """Each request's status and decider match its last audit event; all chains verify."""
    assert stored["verify"]["ok"], stored["verify"]
    expectations = {
        "copilot-deploy": ("approved", "lead-456", None),
        "copilot-billing": ("rejected", "lead-456", REASON),
        "copilot-wiki": ("approved", "admin-1", None),
        "copilot-other": ("pending", None, None),
    }
    for agent, (status, by, reason) in expectations.items():
        approval, events = stored[agent]
        assert (status_of(approval), approval["approved_by"]) == (status, by), agent
        assert approval["rejection_reason"] == reason
        names = [(e["event"], e["actor"]) for e in events]
        first = ("requested", approval["requested_by"])
        assert names == ([first] if by is None else [first, (status, by)]), agent
    billing_events = stored["copilot-billing"][1]
    assert billing_events[-1]["details"] == {"reason": REASON}


def test_inbox_sign_in_approve_reject_and_live_updates(
    chromium_path: str, server: str, db_url: str, tmp_path: Path
) -> None:
    ids = _seed(db_url)
    with chromium(chromium_path, tmp_path / "profile", tmp_path / "chromium.log") as page:
        _sign_in(page, server)
        assert page.evaluate(f"{_item(ids['copilot-other'])}") is None  # not lead-456's
        text = page.evaluate(f"{_item(ids['copilot-deploy'])}.innerText")
        for expected in ("copilot-deploy", "user-123", "needs approval", "production", "Deadline"):
            assert expected in text
        age = page.evaluate(f"{_item(ids['copilot-deploy'])}.querySelector('.age').textContent")
        assert re.fullmatch(r"just now|\d+ (min|h) ago", age), age
        _approve(page, ids["copilot-deploy"])
        _reject(page, ids["copilot-billing"])
        # Another instance (this test process) decides the third one: it leaves without a reload.
        page.evaluate("window.__sameDocument = true")
        _run(db_url, lambda k: service.approve(k, ids["copilot-wiki"], "admin-1"))
        page.wait_for(f"{_item(ids['copilot-wiki'])} === null", "the list to update")
        page.wait_for(
            "document.getElementById('announcer').textContent.includes('copilot-wiki')",
            "the 'decided elsewhere' announcement",
        )
        assert page.evaluate("window.__sameDocument") is True
        assert page.evaluate("document.getElementById('empty').hidden") is False

    _assert_database_and_audit_agree(_stored(db_url, ids))
