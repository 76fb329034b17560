"""A minimal Chrome DevTools Protocol client: launch headless Chromium and drive one page.

Only what the inbox test needs: evaluate JavaScript, type text, press keys, wait for a condition.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
_KEYS = {
    "Enter": {"code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
    "Escape": {"code": "Escape", "windowsVirtualKeyCode": 27},
    "Tab": {"code": "Tab", "windowsVirtualKeyCode": 9},
}


class BrowserError(AssertionError):
    """The browser or the page did not do what the test expected."""


class Page:
    """One page target over its DevTools websocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._next = 0

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result (events in between are dropped)."""
        self._next += 1
        self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == self._next:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, timeout: float = 30.0) -> Any:
        """Poll ``expression`` until it is truthy; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {what} ({expression})")
            time.sleep(0.1)

    def navigate(self, url: str) -> None:
        """Open ``url`` and wait until its document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href", f"{url} to load")

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as a keyboard would."""
        self.send("Input.insertText", text=text)

    def press(self, key: str) -> None:
        """Press and release ``key`` (``Enter``, ``Escape`` or ``Tab``) on the focused element."""
        info = _KEYS[key]
        down = "keyDown" if "text" in info else "rawKeyDown"
        self.send("Input.dispatchKeyEvent", type=down, key=key, **info)
        up = {k: v for k, v in info.items() if k != "text"}
        self.send("Input.dispatchKeyEvent", type="keyUp", key=key, **up)


def _debugger_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with code {proc.returncode}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(marker.read_text().splitlines()[0])
        time.sleep(0.1)
    raise BrowserError("chromium did not open its DevTools port")


def _page_socket(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.load(response)
    for target in targets:
        if target.get("type") == "page":
            return str(target["webSocketDebuggerUrl"])
    raise BrowserError("chromium has no page target")


@contextlib.contextmanager
def chromium(executable: str, profile: Path, log: Path) -> Iterator[Page]:
    """Run headless Chromium on a fresh profile and yield its first page."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale port from an earlier run
    args = [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*args, "about:blank"], stdout=out, stderr=subprocess.STDOUT)
    try:
        port = _debugger_port(profile, proc)
        with connect(_page_socket(port), max_size=None, open_timeout=30) as ws:
            page = Page(ws)
            page.send("Page.enable")
            yield page
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
