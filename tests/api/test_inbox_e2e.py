"""End to end: ``kaizen serve`` in a subprocess, the inbox driven in headless Chromium.

An approver signs in with a token, approves one request (through its confirm step) and
rejects another with the keyboard, sees a request decided by another process leave the
list without a reload, and finds their decisions under the "Decided" tab. The links sent
to approvers open the page of one request: signing in there changes nothing, only the
confirm button decides; the requester is refused and a stranger learns nothing. On a
request needing two approvals, a first approver votes with a comment and edited metadata
(invalid JSON is refused next to its field, unsent) and sees "1 of 2"; the second finds
that version prefilled and approves it. The database and the audit trail must agree
with what the page showed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import TOKENS, status_of
from cdp import Browser, Page

from kaizen import service
from kaizen.api import hash_token
from kaizen.service import Kaizen
from servers import free_port, stop_process

REASON = "Not during the freeze, sorry"
REQUESTER = "user-123"
#: The API tests' users, with the requester, who signs in here too.
USERS = {REQUESTER: "tok-requester-5e1f", **TOKENS}
#: An id a link must carry intact: "/", "%", spaces, "?", "#" and non-ASCII letters.
ODD_ID = "ops/deploy 100% sûr? #1 ✓"
OWN_REQUEST = "You made this request; someone else must decide it."


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
    tokens.write_text(json.dumps({hash_token(token): user for user, token in USERS.items()}))
    port = free_port()
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
        stop_process(proc)
    text = log.read_text(errors="replace")
    print(f"kaizen serve log:\n{text[-5000:]}")  # pytest shows it when the test failed
    # The server must never write a token to its log.
    assert not any(token in text for token in USERS.values())


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


def _seed_linked(db_url: str) -> dict[str, str]:
    """Requests whose links the tests open: one with an awkward id, one of the requester's
    own (routed to them too, which separation of duties must still refuse)."""

    async def work(kaizen: Kaizen) -> dict[str, str]:
        manager = kaizen.approvals
        manager.set_approvers("copilot-deploy", ["lead-456", "admin-1"], reason="prod deploy")
        manager.set_approvers("copilot-self", ["lead-456", REQUESTER])
        meta = {"environment": "production"}
        return {
            "odd": await manager.request_approval(
                "copilot-deploy", REQUESTER, meta, request_id=ODD_ID
            ),
            "plain": await manager.request_approval("copilot-deploy", REQUESTER, meta),
            "own": await manager.request_approval("copilot-self", REQUESTER, meta),
        }

    result: dict[str, str] = _run(db_url, work)
    return result


def _state(db_url: str, request_id: str) -> tuple[str, str | None, str | None, list[str]]:
    """Status, decider, rejection reason and audit event names of a stored request."""

    async def work(kaizen: Kaizen) -> tuple[str, str | None, str | None, list[str]]:
        approval = await service.get_approval(kaizen, request_id)
        events = await service.approval_audit(kaizen, request_id)
        return (
            status_of(approval),
            approval["approved_by"],
            approval["rejection_reason"],
            [e["event"] for e in events],
        )

    result: tuple[str, str | None, str | None, list[str]] = _run(db_url, work)
    return result


UNTOUCHED = ("pending", None, None, ["requested"])


def _link(server: str, request_id: str, action: str) -> str:
    """The ``approve_page``/``reject_page`` link the API gives for a request."""
    quoted = urllib.parse.quote(request_id, safe="")
    request = urllib.request.Request(
        f"{server}/api/approvals/{quoted}",
        headers={"Authorization": f"Bearer {USERS['lead-456']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        link: str = json.load(response)["links"][f"{action}_page"]
    assert link == f"{server}/approvals/{quoted}?action={action}"
    return link


def _js(value: str) -> str:
    return json.dumps(value)


def _item(request_id: str) -> str:
    return f"document.querySelector('li[data-id=\"' + CSS.escape({_js(request_id)}) + '\"]')"


def _shown(selector: str) -> str:
    """JavaScript: the element is there and displayed."""
    return f"(document.querySelector({_js(selector)})?.getClientRects().length ?? 0) > 0"


def _text(page: Page, selector: str) -> str:
    return str(page.evaluate(f"document.querySelector({_js(selector)}).textContent"))


def _focused(page: Page, selector: str, what: str) -> None:
    page.wait_for(f"document.activeElement?.matches({_js(selector)})", what)


def _wait_notice(page: Page, prefix: str) -> None:
    """The success message is on screen (not only read out) and says ``prefix``..."""
    notice = "document.getElementById('notice')"
    page.wait_for(
        f"{notice}.textContent.startsWith({_js(prefix)}) && {notice}.offsetHeight > 10",
        f"a visible '{prefix}' message",
    )


def _enter_token(page: Page, user: str) -> None:
    _focused(page, "#token", "focus on the token field")
    page.type_text(USERS[user])
    page.press("Enter")
    page.wait_for(f"document.getElementById('user-name').textContent === {_js(user)}", "sign-in")


def _sign_in(page: Page, url: str) -> None:
    page.navigate(url)
    _focused(page, "#token", "focus on the token field")
    page.type_text("not-a-token")
    page.press("Enter")
    page.wait_for(_shown("#token-error"), "the token error under the token field")
    assert "not accepted" in _text(page, "#token-error")
    token = "document.getElementById('token')"
    assert page.evaluate(f"{token}.getAttribute('aria-invalid')") == "true"
    assert page.evaluate(f"{token}.getAttribute('aria-describedby')") == "token-error"
    assert page.evaluate("sessionStorage.length") == 0
    _enter_token(page, "lead-456")
    page.wait_for("document.querySelectorAll('#requests > li').length === 3", "3 requests")
    assert page.evaluate("document.getElementById('error').hidden") is True
    assert page.evaluate(f"{token}.hasAttribute('aria-invalid')") is False


def _approve(page: Page, db_url: str, request_id: str) -> None:
    """Approve from the list: Approve… opens the confirm step (Escape cancels it)."""
    item = _item(request_id)
    page.evaluate(f"{item}.querySelector('button.approve').focus()")
    page.press("Enter")
    _focused(page, "button.confirm-approve", "focus on 'Confirm approval'")
    assert page.evaluate(f"{item}.querySelector('.approve').ariaExpanded") == "true"
    page.press("Escape")
    _focused(page, "button.approve", "focus back on Approve… after Escape")
    assert page.evaluate(f"{item}.querySelector('.approve-confirm').hidden") is True
    assert _state(db_url, request_id) == UNTOUCHED  # opening the step sent nothing
    page.press("Enter")
    _focused(page, "button.confirm-approve", "the confirm step again")
    page.press("Enter")
    page.wait_for(f"{item} === null", "the approved request to leave")
    _wait_notice(page, "Approved the request from user-123 for copilot-deploy")


def _reject(page: Page, request_id: str) -> None:
    item = _item(request_id)
    page.evaluate(f"{item}.querySelector('button.reject').focus()")
    page.press("Enter")
    _focused(page, ".reject-reason", "the reason field to take focus")
    label = page.evaluate("document.activeElement.labels[0].textContent")
    assert label == "Reason for rejection"
    page.type_text(REASON)
    page.evaluate(f"{item}.querySelector('button.confirm-reject').focus()")
    page.press("Enter")
    page.wait_for(f"{item} === null", "the rejected request to leave")
    _wait_notice(page, "Rejected")


def _decided_rows(page: Page) -> list[list[str]]:
    rows = "[...document.querySelectorAll('#decided > tr')]"
    cells = ".map((r) => [...r.cells].map((c) => c.textContent.trim()))"
    result: list[list[str]] = page.evaluate(rows + cells)
    return result


def _check_decided_tab(page: Page, server: str, ids: dict[str, str]) -> None:
    """Arrow keys move between the tabs; "Decided" lists this user's own decisions."""
    page.evaluate("document.getElementById('tab-pending').focus()")
    page.press("ArrowRight")
    _focused(page, "#tab-decided", "focus on the Decided tab")
    assert page.evaluate("document.getElementById('tab-decided').ariaSelected") == "true"
    assert page.evaluate("document.getElementById('panel-pending').hidden") is True
    page.wait_for("document.querySelectorAll('#decided > tr').length === 2", "2 decisions")
    rows = {row[0]: row for row in _decided_rows(page)}  # copilot-wiki was admin-1's
    assert rows["copilot-deploy"][1:3] == ["user-123", "Approved"]
    assert rows["copilot-billing"][1:3] == ["user-123", "Rejected"]
    assert rows["copilot-billing"][4] == REASON
    assert all(re.search(r"\d", row[3]) for row in rows.values())  # when
    href = page.evaluate("document.querySelector('#decided a').href")
    assert href.startswith(f"{server}/approvals/")
    assert page.evaluate("location.search") == "?tab=decided"
    page.press("Home")
    _focused(page, "#tab-pending", "focus back on the Pending tab")
    assert page.evaluate("document.getElementById('panel-pending').hidden") is False
    assert page.evaluate("location.search") == ""


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
    rejected = stored["copilot-billing"][1][-1]["details"]
    assert rejected["reason"] == REASON and rejected["vote"]["comment"] == REASON


def test_inbox_sign_in_approve_reject_and_live_updates(
    chrome: Browser, server: str, db_url: str
) -> None:
    ids = _seed(db_url)
    with chrome.new_tab() as page:
        _sign_in(page, server)
        assert page.evaluate(f"{_item(ids['copilot-other'])}") is None  # not lead-456's
        text = page.evaluate(f"{_item(ids['copilot-deploy'])}.innerText")
        for expected in ("copilot-deploy", "user-123", "needs approval", "production", "Deadline"):
            assert expected in text
        age = page.evaluate(f"{_item(ids['copilot-deploy'])}.querySelector('.age').textContent")
        assert re.fullmatch(r"just now|\d+ (min|h) ago", age), age
        _approve(page, db_url, ids["copilot-deploy"])
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
        _check_decided_tab(page, server, ids)

    _assert_database_and_audit_agree(_stored(db_url, ids))


# -- the links sent to approvers ------------------------------------------------

CARD = "#request-slot article"


def _open_signed_out(page: Page, url: str, db_url: str, request_id: str) -> None:
    """Open a link in a tab nobody signed in to: the sign-in form, and nothing decided."""
    page.navigate(url)
    _focused(page, "#token", "the sign-in form")
    assert page.evaluate(_shown("#sign-in-context")) is True
    assert page.evaluate("document.getElementById('request-page').hidden") is True
    assert _state(db_url, request_id) == UNTOUCHED


def _wait_card(page: Page, request_id: str) -> None:
    page.wait_for(_shown(CARD), "the request's page")
    assert _text(page, f"{CARD} .request-link") == request_id
    assert _text(page, f"{CARD} .status") == "Pending"


def test_approve_link_signs_in_then_asks_to_confirm(
    chrome: Browser, server: str, db_url: str
) -> None:
    ids = _seed_linked(db_url)
    url = _link(server, ODD_ID, "approve")
    with chrome.new_tab() as page:
        _open_signed_out(page, url, db_url, ODD_ID)
        _enter_token(page, "lead-456")
        _wait_card(page, ODD_ID)
        assert page.evaluate(_shown(f"{CARD} .approve-confirm")) is True
        assert page.evaluate("location.href") == url  # the URL still names the request
        assert _state(db_url, ODD_ID) == UNTOUCHED  # signed in and shown: still pending
        page.click(f"{CARD} .confirm-approve")
        status = f"document.querySelector('{CARD} .status')?.textContent"
        page.wait_for(f"{status} === 'Approved'", "the page to show the approval")
        _wait_notice(page, "Approved the request from user-123 for copilot-deploy")
        assert page.evaluate(_shown(f"{CARD} .actions")) is False
        assert page.evaluate("location.search") == ""  # a reload would not offer it again
        approved = ("approved", "lead-456", None, ["requested", "approved"])
        assert _state(db_url, ODD_ID) == approved
        # Already signed in, this tab opens the other link of the same request directly.
        page.navigate(_link(server, ODD_ID, "reject"))
        page.wait_for(_shown("#request-note"), "the 'already decided' note")
        assert _text(page, f"{CARD} .status") == "Approved"
        assert _text(page, f"{CARD} .decided-by") == "lead-456"
        assert re.search(r"\d", _text(page, f"{CARD} .decided-at"))
        assert page.evaluate(_shown(f"{CARD} .reject-form")) is False
        page.navigate(f"{server}/approvals/%E0%A4%A")  # a damaged link
        page.wait_for(_shown("#request-missing"), "the damaged-link message")
        assert "damaged" in _text(page, "#request-missing")
    assert _state(db_url, ids["plain"]) == UNTOUCHED


def _check_empty_reason_refused(page: Page, db_url: str, request_id: str) -> None:
    reason = f"{CARD} .reject-reason"
    _focused(page, reason, "focus on the reason field")
    page.click(f"{CARD} .confirm-reject")
    error = f"{CARD} .reject-error"
    page.wait_for(_shown(error), "the error under the reason field")
    assert "reason" in _text(page, error)
    field = f"document.querySelector({_js(reason)})"
    assert page.evaluate(f"{field}.getAttribute('aria-invalid')") == "true"
    described = page.evaluate(f"{field}.getAttribute('aria-describedby')")
    assert page.evaluate(f"document.getElementById({_js(described)}).matches({_js(error)})")
    assert page.evaluate("document.getElementById('error').hidden") is True  # not a global alert
    assert _state(db_url, request_id) == UNTOUCHED


def test_reject_link_wants_a_reason_next_to_its_field(
    chrome: Browser, server: str, db_url: str
) -> None:
    ids = _seed_linked(db_url)
    request_id = ids["plain"]
    url = _link(server, request_id, "reject")
    with chrome.new_tab() as page:
        _open_signed_out(page, url, db_url, request_id)
        _enter_token(page, "lead-456")
        _wait_card(page, request_id)
        _check_empty_reason_refused(page, db_url, request_id)
        page.type_text(REASON)  # focus is still in the field
        field = f"document.querySelector('{CARD} .reject-reason')"
        assert page.evaluate(f"{field}.hasAttribute('aria-invalid')") is False
        page.click(f"{CARD} .confirm-reject")
        _wait_notice(page, "Rejected the request from user-123 for copilot-deploy")
        assert _text(page, f"{CARD} .status") == "Rejected"
        assert _text(page, f"{CARD} .rejection-reason") == REASON
    stored = _state(db_url, request_id)
    assert stored == ("rejected", "lead-456", REASON, ["requested", "rejected"])


def test_links_refuse_the_requester_and_hide_from_strangers(
    chrome: Browser, server: str, db_url: str
) -> None:
    ids = _seed_linked(db_url)
    request_id = ids["own"]
    url = _link(server, request_id, "approve")
    with chrome.new_tab() as page:
        _open_signed_out(page, url, db_url, request_id)
        _enter_token(page, REQUESTER)
        _wait_card(page, request_id)
        page.click(f"{CARD} .confirm-approve")
        page.wait_for(
            f"document.getElementById('error').textContent === {_js(OWN_REQUEST)}",
            "the own-request message",
        )
        assert page.evaluate(_shown("#error")) is True
        assert _text(page, f"{CARD} .status") == "Pending"  # the request stays
        assert page.evaluate(_shown(f"{CARD} .approve")) is True
        assert _state(db_url, request_id) == UNTOUCHED
    with chrome.new_tab() as page:
        _open_signed_out(page, url, db_url, request_id)
        _enter_token(page, "outsider")
        page.wait_for(_shown("#request-missing"), "the not-found message")
        assert "does not exist" in _text(page, "#request-missing")
        assert page.evaluate(f"document.querySelector({_js(CARD)})") is None
        assert page.evaluate("document.getElementById('to-inbox').getAttribute('href')") == "/"
    assert _state(db_url, request_id) == UNTOUCHED


# -- a quorum of two: a vote with a comment and edited metadata ---------------------

ASKED = {"environment": "production", "cost": 15.0}
EDITED = {"environment": "staging", "cost": 10.0}
COMMENT = "Staging first, and cheaper"


def _seed_quorum(db_url: str) -> dict[str, str]:
    """A request needing two approvals, and one escalated past its first deadline."""

    async def work(kaizen: Kaizen) -> dict[str, str]:
        manager = kaizen.approvals
        manager.set_approvers("copilot-quorum", ["lead-456", "admin-1"], quorum=2)
        manager.set_approvers(
            "copilot-late", ["lead-456"], timeout_seconds=0.5, escalate_to=["admin-1"]
        )
        ids = {
            "quorum": await manager.request_approval("copilot-quorum", REQUESTER, ASKED),
            "late": await manager.request_approval("copilot-late", REQUESTER, ASKED),
        }
        await asyncio.sleep(0.6)
        assert (await service.sweep_approvals(kaizen))["escalated"] == 1
        return ids

    result: dict[str, str] = _run(db_url, work)
    return result


def _approval(db_url: str, request_id: str) -> dict[str, Any]:
    async def work(kaizen: Kaizen) -> dict[str, Any]:
        approval = await service.get_approval(kaizen, request_id)
        events = await service.approval_audit(kaizen, request_id)
        return {**approval, "events": [e["event"] for e in events]}

    result: dict[str, Any] = _run(db_url, work)
    return result


def _replace_text(page: Page, selector: str, text: str) -> None:
    """Select all of a text field's content and type ``text`` over it."""
    page.click(selector)
    page.evaluate(f"document.querySelector({_js(selector)}).select()")
    page.type_text(text)


def _editor_json(page: Page) -> Any:
    return page.evaluate(f"JSON.parse(document.querySelector('{CARD} .metadata-edit').value)")


def _first_vote_with_a_comment_and_an_edit(page: Page, db_url: str, request_id: str) -> None:
    assert _text(page, f"{CARD} .progress") == "0 of 2 approvals"
    assert _text(page, f"{CARD} .step-question").startswith("Vote to approve")
    page.click(f"{CARD} .approve-comment")
    page.type_text(COMMENT)
    page.click(f"{CARD} .edit-metadata summary")
    assert _editor_json(page) == ASKED  # prefilled with what was asked
    editor = f"{CARD} .metadata-edit"
    _replace_text(page, editor, '{"environment": "staging", "cost": 10.0,}')
    page.click(f"{CARD} .confirm-approve")
    error = f"{CARD} .metadata-error"
    page.wait_for(_shown(error), "the JSON error under the metadata field")
    assert "not valid JSON" in _text(page, error)
    assert page.evaluate(f"document.querySelector({_js(editor)}).ariaInvalid") == "true"
    _focused(page, ".metadata-edit", "focus on the metadata field")
    assert page.evaluate("document.getElementById('error').hidden") is True
    assert _state(db_url, request_id) == UNTOUCHED  # nothing was sent
    _replace_text(page, editor, json.dumps(EDITED))
    assert page.evaluate(_shown(error)) is False
    page.click(f"{CARD} .confirm-approve")
    _wait_notice(page, "Your vote is recorded: 1 of 2 approvals")
    assert _text(page, f"{CARD} .status") == "Pending"
    assert _text(page, f"{CARD} .progress") == "1 of 2 approvals"
    vote = _text(page, f"{CARD} .votes li")
    for expected in ("lead-456 approved", "with changes", COMMENT, '"production" → "staging"'):
        assert expected in vote, vote
    assert page.evaluate(_shown(f"{CARD} .actions")) is False
    assert "You voted: 1 of 2 approvals" in _text(page, f"{CARD} .voted-note")


def _second_vote_approves_the_edit(page: Page) -> None:
    assert _text(page, f"{CARD} .progress") == "1 of 2 approvals"
    assert COMMENT in _text(page, f"{CARD} .votes")
    assert page.evaluate(_shown(f"{CARD} .leading-note")) is True
    page.click(f"{CARD} .edit-metadata summary")
    assert _editor_json(page) == EDITED  # the version with the most approvals
    page.click(f"{CARD} .confirm-approve")
    _wait_notice(page, "Approved the request from user-123 for copilot-quorum")
    assert _text(page, f"{CARD} .status") == "Approved"
    assert _text(page, f"{CARD} .progress") == "2 of 2 approvals"
    assert page.evaluate(_shown(f"{CARD} .approved-diff")) is True
    changes = _text(page, f"{CARD} .approved-diff")
    assert '"production" → "staging"' in changes and "15 → 10" in changes


def test_a_quorum_vote_with_a_comment_and_edited_metadata(
    chrome: Browser, server: str, db_url: str
) -> None:
    ids = _seed_quorum(db_url)
    request_id = ids["quorum"]
    with chrome.new_tab() as page:
        _open_signed_out(page, _link(server, request_id, "approve"), db_url, request_id)
        _enter_token(page, "lead-456")
        _wait_card(page, request_id)
        _first_vote_with_a_comment_and_an_edit(page, db_url, request_id)
        # In the list the request stays, with the vote shown and nothing more to do.
        page.navigate(server)
        item = _item(request_id)
        page.wait_for(f"{item}?.querySelector('.voted-note').hidden === false", "'You voted'")
        assert page.evaluate(f"{item}.querySelector('.actions').hidden") is True
    stored = _approval(db_url, request_id)
    assert (status_of(stored), stored["events"]) == ("pending", ["requested", "voted"])
    [vote] = stored["votes"]
    assert (vote["approver_id"], vote["comment"], vote["metadata"]) == (
        "lead-456",
        COMMENT,
        EDITED,
    )
    with chrome.new_tab() as page:
        page.navigate(_link(server, request_id, "approve"))
        _enter_token(page, "admin-1")
        _wait_card(page, request_id)
        _second_vote_approves_the_edit(page)
        page.navigate(f"{server}/approvals/{urllib.parse.quote(ids['late'], safe='')}")
        page.wait_for(_shown(f"{CARD} .escalated-note"), "the escalated marker")
        assert "admin-1" in _text(page, f"{CARD} .escalated-text")
    stored = _approval(db_url, request_id)
    assert (status_of(stored), stored["approved_by"]) == ("approved", "admin-1")
    assert stored["approved_metadata"] == EDITED and stored["request_metadata"] == ASKED
    assert stored["events"] == ["requested", "voted", "approved"]
