"""``kaizen serve``: the exit codes of a server that cannot start, its checks of the
database at start, and its log lines (text and JSON)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import socket
from pathlib import Path

import httpx
import pytest
import uvicorn

import kaizen.api.app  # noqa: F401 - loaded before a forked child drops its privileges
from kaizen.cli import build_parser, main
from kaizen.cli.serve import _check_database
from kaizen.service import Kaizen
from refusals import SECRET, closed_port, refused_url

NOBODY = 65534


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_API_TOKENS_FILE", raising=False)
    monkeypatch.setenv("KAIZEN_API_TOKENS", "root:admin=root-token ann=ann-token")


def _as_nobody(argv: list[str]) -> tuple[int, str]:
    """Run ``kaizen argv`` in a forked child without root's privileges: its exit code
    and stderr (a user who may not bind ports below 1024)."""
    build_parser()  # every command module imported: the child reads no file of ours
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with io.TextIOWrapper(io.FileIO(write, "w")) as err, contextlib.redirect_stderr(err):
                code = main(argv)
        finally:
            os._exit(code)
    os.close(write)
    with io.TextIOWrapper(io.FileIO(read, "r")) as err_in:
        err = err_in.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def test_a_port_it_may_not_bind_is_exit_9(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--port", "1"]
    if os.geteuid() == 0:
        code, err = _as_nobody(argv)
    else:
        code, err = main(argv), capsys.readouterr().err
    assert code == 9, err
    assert err == "kaizen: error: cannot listen on 127.0.0.1:1: Permission denied\n"
    assert not (tmp_path / "k.db").exists()


def test_a_busy_port_in_json_is_one_json_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--port", str(port)]
        assert main([*argv, "--log-format", "json"]) == 9
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR" and record["logger"] == "kaizen.serve"
    assert record["exit_code"] == 9 and f"cannot listen on 127.0.0.1:{port}" in record["message"]


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
def test_a_database_refusing_the_server_is_exit_6(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = refused_url(db_url, "user")
    assert main(["--db", url, "serve", "--port", str(closed_port())]) == 6
    err = capsys.readouterr().err
    assert err.startswith("kaizen: error: cannot use database") and err.count("\n") == 1
    assert SECRET not in err


async def test_a_database_down_at_start_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql://user:{SECRET}@127.0.0.1:{closed_port()}/x"
    async with Kaizen.open(url) as kaizen:
        await _check_database(kaizen)  # no exception: it may come up later
    (record,) = [r for r in caplog.records if r.name == "kaizen.serve"]
    assert record.levelno == logging.WARNING and "/healthz says 503" in record.getMessage()
    assert SECRET not in caplog.text


async def _serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[asyncio.Task[int], list[uvicorn.Server], str]:
    """``kaizen serve`` in this event loop, answering; its task, server and URL."""
    servers: list[uvicorn.Server] = []

    class Recorded(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            servers.append(self)

    monkeypatch.setattr(uvicorn, "Server", Recorded)
    port = closed_port()
    argv = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--port", str(port), *extra]
    args = build_parser().parse_args(argv)
    args.database_url = args.db
    task = asyncio.create_task(args.handler(args))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return task, servers, url
            assert not task.done(), task
            await asyncio.sleep(0.1)
    raise AssertionError("kaizen serve did not answer")


async def test_json_logs_one_object_per_line_with_the_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task, servers, url = await _serve(tmp_path, monkeypatch, "--log-format", "json")
    async with httpx.AsyncClient(base_url=url) as http:
        me = await http.get("/api/me", headers={"Authorization": "Bearer ann-token"})
        assert me.status_code == 200
        assert (await http.get("/api/approvals/x%0Ay")).status_code == 404  # no route
    servers[0].should_exit = True
    assert await asyncio.wait_for(task, 30) == 0
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]  # every line is an object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert all(r["time"].endswith("Z") for r in records)
    assert any(r["logger"].startswith("uvicorn") for r in records)  # the server's own too
    access = [r for r in records if r["logger"] == "kaizen.access"]
    me_line = next(r for r in access if r["path"] == "/api/me")
    assert me_line["method"] == "GET" and me_line["status"] == 200
    assert me_line["route"] == "/api/me" and me_line["client"] == "127.0.0.1"
    assert isinstance(me_line["duration_ms"], float)
    odd = next(r for r in access if r["route"] == "unmatched")
    assert odd["status"] == 404 and odd["path"] == "/api/approvals/x\\x0ay"  # one line
    assert "ann-token" not in err


async def test_text_logs_have_a_time_level_and_logger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task, servers, url = await _serve(tmp_path, monkeypatch)
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/nowhere")).status_code == 404
    servers[0].should_exit = True
    assert await asyncio.wait_for(task, 30) == 0
    lines = capsys.readouterr().err.splitlines()
    (access,) = [line for line in lines if " kaizen.access: " in line and "/nowhere" in line]
    stamp, level, _ = access.split(" ", 2)
    assert stamp.endswith("Z") and level == "INFO"
    assert "GET /nowhere 404" in access
