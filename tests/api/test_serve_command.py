"""``kaizen serve``: its options, and where its tokens come from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from pathlib import Path

import httpx
import pytest
import uvicorn

from kaizen.api import ADMIN, Identity, TokenFile, TokenStore, hash_token
from kaizen.cli import build_parser, main
from kaizen.cli.serve import allowed_hosts, load_tokens


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_API_TOKENS", raising=False)
    monkeypatch.delenv("KAIZEN_API_TOKENS_FILE", raising=False)


def test_options_and_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.tokens, args.base_url) == ("127.0.0.1", 8000, None, None)
    args = build_parser().parse_args(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "9",
            "--tokens",
            "t.json",
            "--base-url",
            "https://x",
        ]
    )
    assert (args.host, args.port, args.tokens, args.base_url) == (
        "0.0.0.0",
        9,
        "t.json",
        "https://x",
    )


def test_tokens_from_file_env_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps({hash_token("file-token"): "filer"}))
    assert load_tokens(str(file)).user_for("file-token") == "filer"
    monkeypatch.setenv("KAIZEN_API_TOKENS_FILE", str(file))
    monkeypatch.setenv("KAIZEN_API_TOKENS", "envy=env-token")
    store = load_tokens(None)
    assert (store.user_for("file-token"), store.user_for("env-token")) == ("filer", "envy")
    assert isinstance(store, TokenFile) and store.path == file
    # The file is reloaded when it changes; the environment's tokens stay.
    file.write_text(json.dumps({hash_token("new-token"): "newer"}))
    assert (store.user_for("file-token"), store.user_for("new-token")) == (None, "newer")
    assert store.user_for("env-token") == "envy"


def test_tokens_from_env_only_with_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_API_TOKENS", "root:admin=root-token ann=ann-token")
    store = load_tokens(None)
    assert isinstance(store, TokenStore)
    assert store.identify("root-token") == Identity("root", ADMIN)
    assert store.identify("ann-token") == Identity("ann")


def test_serve_refuses_to_start_without_tokens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve"]) == 10
    assert "no API tokens configured" in capsys.readouterr().err


def test_serve_reports_a_missing_token_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--tokens", str(missing)]) == 10
    assert "cannot read token file" in capsys.readouterr().err


def test_serve_reports_a_bad_token_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "tokens.json"
    bad.write_text('{"s3cret": "alice"}')
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--tokens", str(bad)]) == 10
    err = capsys.readouterr().err
    assert "sha256" in err and "s3cret" not in err


def test_serve_without_the_server_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve"]) == 11
    assert "kaizen-dataflow[server]" in capsys.readouterr().err


async def test_serve_runs_the_app_until_uvicorn_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    servers: list[uvicorn.Server] = []

    class Recorded(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            servers.append(self)

    monkeypatch.setattr(uvicorn, "Server", Recorded)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"version": 1, "tokens": []}))  # no token yet: a warning
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--port", str(port)]
    hosts = ["--allowed-host", "k.example", "--allowed-host", "127.0.0.1"]
    args = build_parser().parse_args(
        [*argv, "--tokens", str(tokens), "--base-url", "https://k.example", *hosts]
    )
    args.database_url = args.db
    task = asyncio.create_task(args.handler(args))
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url) as http:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    break
            assert not task.done(), task
            await asyncio.sleep(0.1)
        assert "no API token yet" in capsys.readouterr().err
        me = await http.get("/api/me", headers={"Authorization": "Bearer s3cret"})
        assert me.status_code == 401
        tokens.write_text(json.dumps({hash_token("s3cret"): "lead-456"}))  # picked up at once
        me = await http.get("/api/me", headers={"Authorization": "Bearer s3cret"})
        assert me.json()["user"] == "lead-456"
        assert (await http.get("/openapi.json")).json()["servers"] == [{"url": "https://k.example"}]
        forged = await http.get("/healthz", headers={"Host": "evil.example"})
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "untrusted_host"
    servers[0].should_exit = True
    assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.parametrize(
    ("host", "base_url", "given", "expected"),
    [
        ("127.0.0.1", None, None, ["127.0.0.1", "localhost", "[::1]"]),
        ("localhost", None, None, ["127.0.0.1", "localhost", "[::1]"]),
        ("10.1.2.3", None, None, ["10.1.2.3"]),
        ("fd00::7", None, None, ["[fd00::7]"]),
        ("0.0.0.0", "https://kaizen.example.com:8443/x", None, ["kaizen.example.com"]),
        ("127.0.0.1", "http://[::1]:8000", None, ["[::1]"]),
        ("0.0.0.0", None, ["a.example", "*.b.example"], ["a.example", "*.b.example"]),
    ],
)
def test_allowed_hosts_default_to_the_public_url_or_the_bind_address(
    host: str, base_url: str | None, given: list[str] | None, expected: list[str]
) -> None:
    assert allowed_hosts(host, base_url, given) == expected


@pytest.mark.parametrize("argv", [["--host", "0.0.0.0"], ["--host", "::"], ["--base-url", "x"]])
def test_serve_refuses_hosts_it_cannot_trust(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.setenv("KAIZEN_API_TOKENS", "alice=tok")
    assert main(["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", *argv]) == 2
    err = capsys.readouterr().err
    assert "--base-url" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["0", "80000", "-1", "http"])
def test_serve_refuses_a_port_that_is_not_one(
    capsys: pytest.CaptureFixture[str], port: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", port])
    assert exc.value.code == 2
    assert "is not a TCP port" in capsys.readouterr().err


def test_serve_reports_a_busy_port_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAIZEN_API_TOKENS", "alice=tok")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["--db", f"sqlite:///{tmp_path / 'k.db'}", "serve", "--port", str(port)]
        assert main(argv) == 9
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1
    assert not (tmp_path / "k.db").exists()  # nothing opened before the port was ours
