"""``kaizen tokens``: add, list, revoke; atomic locked writes; a running server reloads them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dataflow.errors import ValidationError
from kaizen.api import ADMIN, Identity, hash_token
from kaizen.api.token_admin import add_token, list_tokens
from kaizen.cli import main
from kaizen.cli.serve import load_tokens
from kaizen.cli.tokens import parse_expiry
from servers import free_port, stop_process

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_API_TOKENS", raising=False)
    monkeypatch.delenv("KAIZEN_API_TOKENS_FILE", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _add(capsys: pytest.CaptureFixture[str], file: Path, *argv: str) -> dict[str, str]:
    code, out, err = run(capsys, "tokens", "add", *argv, "--tokens", str(file), "--json")
    assert code == 0, err
    assert "shown only once" in err
    added: dict[str, str] = json.loads(out)
    return added


def _hashes(file: Path) -> list[str]:
    return [t["hash"] for t in json.loads(file.read_text())["tokens"]]


def test_add_list_revoke_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "tokens.json"
    code, out, err = run(capsys, "tokens", "add", "alice", "--tokens", str(file))
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines())
    alice = fields["token"]
    assert (fields["user"], fields["role"], fields["expires_at"]) == ("alice", "user", "-")
    assert fields["id"].startswith("tok_") and str(file) in err and alice not in err
    admin = _add(capsys, file, "root", "--role", "admin", "--expires", "30d")
    assert admin["role"] == "admin"
    expires = datetime.fromisoformat(admin["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)

    # Only hashes are stored; the printed tokens authenticate through the server's loader.
    assert _hashes(file) == [hash_token(alice), hash_token(admin["token"])]
    assert alice not in file.read_text() and admin["token"] not in file.read_text()
    tokens = load_tokens(str(file))
    assert tokens.identify(alice) == Identity("alice")
    assert tokens.identify(admin["token"]) == Identity("root", ADMIN)

    code, out, _ = run(capsys, "tokens", "list", "--tokens", str(file))
    assert code == 0
    assert out.split()[:6] == ["ID", "USER", "ROLE", "CREATED_AT", "EXPIRES_AT", "EXPIRED"]
    assert "alice" in out and "root" in out
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["no", "no"]  # not expired
    code, out, _ = run(capsys, "tokens", "list", "--tokens", str(file), "--json")
    listed = json.loads(out)
    assert [t["user"] for t in listed] == ["alice", "root"]
    assert set(listed[0]) == {"id", "user", "role", "created_at", "expires_at", "expired"}
    assert not any(h in out for h in _hashes(file))

    code, out, _ = run(capsys, "tokens", "revoke", admin["id"], "--tokens", str(file))
    assert (code, out) == (0, f"revoked {admin['id']} (root, admin)\n")
    assert load_tokens(str(file)).identify(admin["token"]) is None
    assert load_tokens(str(file)).identify(alice) == Identity("alice")

    second = _add(capsys, file, "alice")
    code, out, _ = run(capsys, "tokens", "revoke", "alice", "--tokens", str(file), "--json")
    assert code == 0 and {t["id"] for t in json.loads(out)} == {fields["id"], second["id"]}
    code, out, _ = run(capsys, "tokens", "list", "--tokens", str(file))
    assert (code, out.strip()) == (0, f"no tokens in {file}")
    assert load_tokens(str(file)).identify(alice) is None


def test_the_file_is_private_and_no_temporary_file_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "tokens.json"
    file.write_text("{}")
    file.chmod(0o644)
    _add(capsys, file, "alice")
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]


def test_revoke_unknown_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "tokens.json"
    code, _, err = run(capsys, "tokens", "revoke", "nobody", "--tokens", str(file))
    assert code == 3 and "no token" in err and "kaizen tokens list" in err
    _add(capsys, file, "alice")
    code, _, err = run(capsys, "tokens", "revoke", "tok_0000", "--tokens", str(file))
    assert code == 3 and len(err.splitlines()) == 1
    assert [r.user for r in list_tokens(file)] == ["alice"]


@pytest.mark.parametrize(
    "expires",
    [
        "2001-01-01",
        "2001-01-01T00:00:00+00:00",
        "0d",
        "tomorrow",
        "12x",
        "99999999w",
        "9999-12-31T23:59:59-05:00",  # past year 9999 in UTC
    ],
)
def test_past_or_invalid_expiry_is_exit_7(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], expires: str
) -> None:
    file = tmp_path / "tokens.json"
    code, out, err = run(
        capsys, "tokens", "add", "ann", "--expires", expires, "--tokens", str(file)
    )
    assert (code, out) == (7, "")
    assert err.startswith("kaizen: error: --expires") and len(err.splitlines()) == 1
    assert not file.exists()


def test_parse_expiry() -> None:
    assert parse_expiry("90s", now=NOW) == NOW + timedelta(seconds=90)
    assert parse_expiry("45m", now=NOW) == NOW + timedelta(minutes=45)
    assert parse_expiry(" 12h ", now=NOW) == NOW + timedelta(hours=12)
    assert parse_expiry("30d", now=NOW) == NOW + timedelta(days=30)
    assert parse_expiry("2w", now=NOW) == NOW + timedelta(weeks=2)
    assert parse_expiry("2026-07-01T00:00:00", now=NOW) == datetime(2026, 7, 1, tzinfo=UTC)
    moment = parse_expiry("2026-07-01T02:00:00+02:00", now=NOW)
    assert (moment, moment.tzinfo) == (datetime(2026, 7, 1, tzinfo=UTC), UTC)
    with pytest.raises(ValidationError, match="not in the future"):
        parse_expiry("2026-06-01T12:00:00Z", now=NOW)


def test_add_validates_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "tokens.json"
    code, _, err = run(capsys, "tokens", "add", " ", "--tokens", str(file))
    assert code == 7 and "user id" in err
    with pytest.raises(SystemExit) as usage:
        main(["tokens", "add", "ann", "--role", "root", "--tokens", str(file)])
    assert usage.value.code == 2
    with pytest.raises(ValidationError, match="role"):
        add_token(file, "ann", role="root")
    with pytest.raises(ValidationError, match="timezone-aware"):
        add_token(file, "ann", expires_at=datetime(2099, 1, 1))
    with pytest.raises(ValidationError, match="future"):
        add_token(file, "ann", expires_at=NOW, now=NOW + timedelta(microseconds=1))
    assert not file.exists()
    _, record = add_token(file, "ann", expires_at=NOW + timedelta(days=1, microseconds=5), now=NOW)
    assert (record.created_at, record.expires_at) == (NOW, NOW + timedelta(days=1))
    assert record.expired(NOW + timedelta(days=1)) and not record.expired(NOW)
    clock = datetime.now(UTC)
    stale, _ = add_token(
        file, "bob", expires_at=clock - timedelta(days=1), now=clock - timedelta(2)
    )
    live, _ = add_token(file, "cy", expires_at=clock + timedelta(hours=1))
    tokens = load_tokens(str(file))
    assert (tokens.identify(stale), tokens.identify(live)) == (None, Identity("cy"))


def test_the_token_file_path_is_required(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "tokens", "list")
    assert code == 2
    assert err == "kaizen: error: no token file: use --tokens FILE or $KAIZEN_API_TOKENS_FILE\n"
    file = tmp_path / "from-env.json"
    monkeypatch.setenv("KAIZEN_API_TOKENS_FILE", str(file))
    code, out, _ = run(capsys, "tokens", "add", "ann", "--json")
    assert code == 0 and file.exists()
    assert load_tokens(None).identify(json.loads(out)["token"]) == Identity("ann")


def test_file_errors_are_one_line_without_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    secret = hash_token("do-not-print")
    bad.write_text(json.dumps({"version": 1, "tokens": [{"hash": secret}]}))
    for argv in (["add", "ann"], ["list"], ["revoke", "ann"]):
        code, _, err = run(capsys, "tokens", *argv, "--tokens", str(bad))
        assert code == 2 and "missing field" in err and secret not in err, argv
    toml = tmp_path / "tokens.toml"
    toml.write_text(f'"{secret}" = "tom"\n')
    code, out, _ = run(capsys, "tokens", "list", "--tokens", str(toml), "--json")
    assert code == 0 and json.loads(out)[0]["user"] == "tom"
    code, _, err = run(capsys, "tokens", "add", "ann", "--tokens", str(toml))
    assert code == 2 and "use a .json file" in err
    missing_dir = tmp_path / "no-such-dir" / "tokens.json"
    code, _, err = run(capsys, "tokens", "add", "ann", "--tokens", str(missing_dir))
    assert code == 2 and "cannot lock" in err
    # The temporary file's name (".NAME.XXXXXXXX.tmp") is too long: the write fails cleanly.
    long_name = tmp_path / ("t" * 245 + ".json")
    code, _, err = run(capsys, "tokens", "add", "ann", "--tokens", str(long_name))
    assert code == 2 and "cannot write" in err
    assert not long_name.exists() and not any(p.suffix == ".tmp" for p in tmp_path.iterdir())


def test_a_legacy_file_is_converted_on_the_first_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps({hash_token("legacy-token"): "old-user"}))
    code, out, _ = run(capsys, "tokens", "list", "--tokens", str(file), "--json")
    (legacy,) = json.loads(out)
    assert (legacy["user"], legacy["role"], legacy["expires_at"]) == ("old-user", "user", None)
    new = _add(capsys, file, "ann")
    data = json.loads(file.read_text())
    assert data["version"] == 1
    assert [t["id"] for t in data["tokens"]] == [legacy["id"], new["id"]]
    assert load_tokens(str(file)).identify("legacy-token") == Identity("old-user")
    code, _, _ = run(capsys, "tokens", "revoke", legacy["id"], "--tokens", str(file))
    assert code == 0 and load_tokens(str(file)).identify("legacy-token") is None
    assert load_tokens(str(file)).identify(new["token"]) == Identity("ann")


def test_tokens_work_without_the_server_extra(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    script = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from kaizen.cli import main\n"
        f"sys.exit(main(['tokens', 'add', 'ann', '--tokens', {str(file)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [r.user for r in list_tokens(file)] == ["ann"]


_WORKER = """
import contextlib, io, json, sys
from kaizen.cli import main
name, count, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(count):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tokens", "add", f"{name}-{i}", "--tokens", path, "--json"])
    assert code == 0, code
    print(json.dumps(json.loads(out.getvalue())), flush=True)
"""


def test_concurrent_adds_lose_nothing_and_the_file_is_always_valid(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    count = 40
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_API_TOKENS")}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, name, str(count), str(file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        for name in ("a", "b")
    ]
    reads = 0
    while any(w.poll() is None for w in workers):
        if file.exists():
            data = json.loads(file.read_text())  # never a partial file
            assert data["version"] == 1
            reads += 1
    outputs = [w.communicate(timeout=120)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    printed = [json.loads(line) for out in outputs for line in out.splitlines()]
    assert len(printed) == 2 * count and reads > 0
    records = list_tokens(file)
    assert sorted(r.user for r in records) == sorted(p["user"] for p in printed)
    assert len({r.id for r in records}) == 2 * count
    tokens = load_tokens(str(file))
    assert all(tokens.identify(p["token"]) == Identity(p["user"]) for p in printed)


def _me(url: str, token: str) -> int:
    request = urllib.request.Request(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def _wait_for(url: str, token: str, status: int, within: float) -> float:
    """Seconds until ``/api/me`` answers ``status`` for ``token``; fails after ``within``."""
    start = time.monotonic()
    while (seen := _me(url, token)) != status:
        assert time.monotonic() - start < within, f"still {seen} after {within} s"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_running_server_refuses_a_revoked_token_within_2_s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "tokens.json"
    keeper = _add(capsys, file, "keeper")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAIZEN_API_TOKENS")}
    command = [sys.executable, "-m", "kaizen.cli", "--db", f"sqlite:///{tmp_path / 'k.db'}",
               "serve", "--port", str(port), "--tokens", str(file)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while _probe(url) != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert _me(url, keeper["token"]) == 200
        added = _add(capsys, file, "alice")  # added while the server runs
        _wait_for(url, added["token"], 200, within=2)
        code, _, _ = run(capsys, "tokens", "revoke", "alice", "--tokens", str(file))
        assert code == 0
        assert _wait_for(url, added["token"], 401, within=2) < 2
        assert _me(url, keeper["token"]) == 200
    finally:
        stop_process(proc)
    text = log.read_text(errors="replace")
    assert keeper["token"] not in text and added["token"] not in text
    assert hash_token(added["token"]) not in text


def _probe(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            status: int = response.status
            return status
    except (urllib.error.URLError, OSError):
        return 0
