"""What ``kaizen demo`` leaves to try next: a token for the approver, and the commands
to serve the inbox and decide the pending request, printed to work as printed."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from dataflow.urls import parse_url

__all__ = [
    "TOKEN_DAYS",
    "NextSteps",
    "demo_port",
    "kaizen_command",
    "serve_port",
    "tokens_path",
    "write_token",
]

#: The port the printed ``kaizen serve`` command uses unless it is taken.
DEFAULT_PORT = 8000
#: The demo approver's token file, next to the SQLite database (else in the working directory).
TOKENS_NAME = "kaizen-tokens.json"
TOKEN_DAYS = 7


def demo_port(text: str) -> int:
    """``--port``: a TCP port for the printed ``kaizen serve`` command."""
    port = int(text) if text.isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def serve_port(asked: int | None) -> int:
    """``asked``; else 8000 if nothing listens there, else a free loopback port."""
    if asked is not None:
        return asked
    try:
        with socket.create_server(("127.0.0.1", DEFAULT_PORT)):
            return DEFAULT_PORT
    except OSError:
        with socket.create_server(("127.0.0.1", 0)) as sock:
            return int(sock.getsockname()[1])


def kaizen_command() -> list[str]:
    """How to run this ``kaizen`` again: ``kaizen`` when it is the one on ``PATH``, else
    the script's path as it was run (``.venv/bin/kaizen``), else ``python -m kaizen.cli``."""
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) == "kaizen" and os.path.isfile(script):
        on_path = shutil.which("kaizen")
        if on_path is not None and os.path.samefile(on_path, script):
            return ["kaizen"]
        return [script]
    return [sys.executable, "-m", "kaizen.cli"]


def tokens_path(url: str, given: str | None) -> Path:
    """The demo's token file: ``given``, else next to the SQLite database, else here."""
    if given:
        return Path(given)
    parsed = parse_url(url)
    if parsed.family == "sqlite" and parsed.database not in (None, ":memory:"):
        return Path(parsed.database).parent / TOKENS_NAME
    return Path(TOKENS_NAME)


def write_token(path: Path, user: str) -> str:
    """A new token for ``user`` in ``path`` (only its hash is stored); the token."""
    from kaizen.api.token_admin import add_token

    expires = datetime.now(UTC) + timedelta(days=TOKEN_DAYS)
    token, _record = add_token(path, user, expires_at=expires)
    return token


def _masked(url: str) -> str:
    """``url`` as given (hosts, options and all) with its password replaced by ``***``."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it, else absolute."""
    full = path.resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


class NextSteps:
    """The commands the demo prints for its pending request.

    Args:
        url: The database URL the demo used.
        db_flag: The ``--db`` the command got (None: from the environment or the default).
        port: The port of the printed ``kaizen serve``.
        tokens: The token file the demo wrote.
    """

    def __init__(self, url: str, db_flag: str | None, port: int, tokens: Path) -> None:
        self.kaizen = kaizen_command()
        self.note = ""
        password = parse_url(url).password
        if not password:
            self.db = ["--db", url]
        elif db_flag is None:  # the same variable gives it to the next commands
            self.db = []
        else:  # never print a password: the reader puts it back
            self.db = ["--db", _masked(url)]
            self.note = "  (put your database password in place of *** above)\n"
        self.port = port
        self.tokens = _shown(tokens)
        self.inbox_url = f"http://127.0.0.1:{port}/"

    def command(self, *args: str) -> str:
        """A ``kaizen`` command line on the demo's database, quoted for a POSIX shell."""
        return shlex.join([*self.kaizen, *self.db, *args])

    def serve(self) -> str:
        """The ``kaizen serve`` command line."""
        return self.command("serve", "--port", str(self.port), "--tokens", self.tokens)

    def write(
        self, out: TextIO, request: dict[str, Any], approver: str, token: str
    ) -> dict[str, str]:
        """Print the next steps for ``approver`` (signing in with ``token``) to decide
        ``request``; return the commands printed."""
        request_id = request["id"]
        out.write(f"\nNext steps (in {Path.cwd()}):\n")
        out.write(f"  Serve the approvals API and the inbox:\n    {self.serve()}\n{self.note}")
        out.write(
            f"  Open {self.inbox_url} and sign in as {approver} with this token:\n    {token}\n"
        )
        approve = self.command("approvals", "approve", request_id, "--as", approver)
        out.write(f"  Or approve the request from the command line:\n    {approve}\n")
        agent, requester = request["external_agent_id"], request["requested_by"]
        another = self.command("approvals", "request", "--agent", agent, "--by", requester)
        out.write(f"  Request another one (routed by the stored policy):\n    {another}\n")
        return {"serve": self.serve(), "inbox": self.inbox_url, "approve": approve}
