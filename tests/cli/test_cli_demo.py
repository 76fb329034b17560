"""``kaizen demo`` on every database: both quick starts survive a restart, a ``dataflow``
model and query, and one request left pending with a new token for its approver and
next steps that work as printed."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from cli_support import run, usage_error

from demo_steps import clean_env, parse_steps
from kaizen.api import hash_token
from kaizen.cli import _demo_next
from kaizen.cli._demo_next import NextSteps, kaizen_command, serve_port


def _printed(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command line the demo printed, as printed, in ``cwd``."""
    return subprocess.run(
        shlex.split(line),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_leaves_a_request_pending_with_next_steps_that_work(
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # where a server database's demo writes its token file
    code, out, _ = run(capsys, "--db", db_url, "demo", "--port", "8123")
    assert code == 0
    assert "approved by lead-456" in out
    assert "requested -> approved (verified: True)" in out
    assert "'key': 'value'" in out and "channels api, cli" in out
    assert "s3cret" not in out
    # dataflow: the model and the filtered query, its rows in order.
    assert "@db.model class DemoTask" in out
    assert "    task-3  priority 3  Ship version 2\n    task-1  priority 2  Write" in out
    assert "task-2" not in out and "task-4" not in out

    steps = parse_steps(out)
    serve = ["serve", "--port", "8123", "--tokens", "kaizen-tokens.json"]
    assert steps.serve == shlex.join([sys.executable, "-m", "kaizen.cli", "--db", db_url, *serve])
    assert steps.inbox == "http://127.0.0.1:8123/"
    stored = json.loads((tmp_path / "kaizen-tokens.json").read_text())["tokens"]
    assert [(t["user"], t["hash"]) for t in stored] == [("lead-456", hash_token(steps.token))]
    assert stored[0]["expires_at"] is not None

    code, listed, _ = run(capsys, "--db", db_url, "approvals", "list", "--json")
    items = json.loads(listed)["items"]
    assert [(i["status"], i["external_agent_id"]) for i in items] == [
        ("pending", "copilot-001"),  # newest first
        ("approved", "copilot-001"),
    ]
    assert items[0]["id"] == steps.request_id and items[0]["approvers"] == ["lead-456"]
    code, policy, _ = run(capsys, "--db", db_url, "policies", "show", "copilot-001", "--json")
    assert code == 0 and json.loads(policy)["custom_approvers"] == ["lead-456"]

    done = _printed(steps.approve, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"approved {steps.request_id} as lead-456" in done.stdout

    # Again on the same database: a new pending request and a second token, nothing lost.
    code, again, _ = run(capsys, "--db", db_url, "demo", "--port", "8123")
    assert code == 0 and parse_steps(again).request_id != steps.request_id
    assert len(json.loads((tmp_path / "kaizen-tokens.json").read_text())["tokens"]) == 2


def test_demo_writes_the_token_file_it_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'data' / 'k.db'}"
    (tmp_path / "data").mkdir()
    code, out, err = run(capsys, "--db", url, "demo", "--port", "8123", "--tokens", "t/x.json")
    assert code == 2 and "no folder 't'" in err and out == ""  # refused before any write
    assert not (tmp_path / "data" / "k.db").exists()
    (tmp_path / "t").mkdir()
    code, out, _ = run(capsys, "--db", url, "demo", "--port", "8123", "--tokens", "t/x.json")
    assert code == 0 and "--tokens t/x.json" in parse_steps(out).serve
    assert (tmp_path / "t" / "x.json").exists() and not (tmp_path / "kaizen-tokens.json").exists()
    # Without --tokens: next to the SQLite file, shown relative to the working directory.
    code, out, _ = run(capsys, "--db", url, "demo", "--port", "8123")
    assert code == 0 and "--tokens data/kaizen-tokens.json" in parse_steps(out).serve
    assert "not a TCP port" in usage_error(capsys, "demo", "--port", "0")


def test_the_demo_port_is_8000_unless_it_is_taken() -> None:
    try:
        holder = socket.create_server(("127.0.0.1", 8000))
    except OSError:  # taken already: the case under test
        holder = None
    with holder or nullcontext():
        port = serve_port(None)
        assert port != 8000
        with socket.create_server(("127.0.0.1", port)):  # one nobody listens on
            pass
    if holder is not None:  # it was free before this test took it
        assert serve_port(None) == 8000
    assert serve_port(9123) == 9123


def test_the_printed_commands_never_show_a_password() -> None:
    url = "postgresql://app:s3cret@db1:5432,db2:5432/app?target_session_attrs=read-write"
    given = NextSteps(url, url, 8000, Path("kaizen-tokens.json"))
    masked = "postgresql://app:***@db1:5432,db2:5432/app?target_session_attrs=read-write"
    assert given.db == ["--db", masked] and "password" in given.note
    assert "s3cret" not in given.serve()
    from_env = NextSteps(url, None, 8000, Path("kaizen-tokens.json"))
    assert from_env.db == [] and " serve --port 8000 " in from_env.serve()
    plain = NextSteps("mysql://root@127.0.0.1/app", None, 8000, Path("kaizen-tokens.json"))
    assert plain.db == ["--db", "mysql://root@127.0.0.1/app"] and plain.note == ""
    elsewhere = NextSteps(url, None, 8000, Path("/nonexistent/tokens.json"))
    assert elsewhere.tokens == "/nonexistent/tokens.json"  # outside the working directory


def test_the_printed_kaizen_is_the_one_that_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "bin" / "kaizen"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [".venv/bin/kaizen"])
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".venv").symlink_to(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert kaizen_command() == [".venv/bin/kaizen"]  # as ./run demo runs it
    monkeypatch.setenv("PATH", str(script.parent))
    assert kaizen_command() == ["kaizen"]  # the kaizen on PATH
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/pytest"])
    assert kaizen_command() == [sys.executable, "-m", "kaizen.cli"]
    assert _demo_next.tokens_path("sqlite:///:memory:", None) == Path("kaizen-tokens.json")
