"""A minimal Chrome DevTools Protocol client: launch headless Chromium and drive its tabs.

Only what the inbox test needs: open a fresh tab, evaluate JavaScript, type text, press keys,
click an element with the mouse, wait for a condition.
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

from servers import stop_process

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
_KEYS = {
    "Enter": {"code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
    "Escape": {"code": "Escape", "windowsVirtualKeyCode": 27},
    "Tab": {"code": "Tab", "windowsVirtualKeyCode": 9},
    "Home": {"code": "Home", "windowsVirtualKeyCode": 36},
    "End": {"code": "End", "windowsVirtualKeyCode": 35},
    "ArrowLeft": {"code": "ArrowLeft", "windowsVirtualKeyCode": 37},
    "ArrowRight": {"code": "ArrowRight", "windowsVirtualKeyCode": 39},
}


# The middle of an element in the viewport, if a click there would reach it; else why not.
_POINT = """(() => {
  const el = document.querySelector(%s);
  if (!el) return "no such element";
  el.scrollIntoView({block: "center"});
  const box = el.getBoundingClientRect();
  if (!box.width || !box.height) return "it is not displayed";
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const hit = document.elementFromPoint(x, y);
  return hit && el.contains(hit) ? [x, y] : "another element covers it";
})()"""


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

    def click(self, selector: str) -> None:
        """Click the element ``selector`` matches with the mouse, as a person would.

        Raises:
            BrowserError: Nothing matches, it is not displayed, or another element covers it.
        """
        where = self.evaluate(_POINT % json.dumps(selector))
        if not isinstance(where, list):
            raise BrowserError(f"cannot click {selector}: {where}")
        x, y = where
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def press(self, key: str) -> None:
        """Press and release ``key`` (a name in ``_KEYS``) on the focused element."""
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


class Browser:
    """A running Chromium, reached over its DevTools HTTP endpoint on loopback."""

    def __init__(self, port: int) -> None:
        self._base = f"http://127.0.0.1:{port}"

    def _http(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(f"{self._base}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body

    @contextlib.contextmanager
    def _attach(self, socket_url: str) -> Iterator[Page]:
        with connect(socket_url, max_size=None, open_timeout=30) as ws:
            page = Page(ws)
            page.send("Page.enable")
            yield page

    @contextlib.contextmanager
    def new_tab(self) -> Iterator[Page]:
        """A new tab (its own session storage: nobody is signed in there), closed afterwards."""
        target = json.loads(self._http("/json/new?about:blank", method="PUT"))
        try:
            with self._attach(str(target["webSocketDebuggerUrl"])) as page:
                yield page
        finally:
            with contextlib.suppress(OSError):  # the browser may be gone already
                self._http(f"/json/close/{target['id']}")


@contextlib.contextmanager
def browser(executable: str, profile: Path, log: Path) -> Iterator[Browser]:
    """Run headless Chromium on a fresh profile; yield it to open tabs in."""
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale port from an earlier run
    args = [executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*args, "about:blank"], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Browser(_debugger_port(profile, proc))
    finally:
        stop_process(proc, timeout=15)
