"""Bearer tokens: hashing, stores, roles, expiry, token files (both formats), reload."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pty
import runpy
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import kaizen.api
from kaizen.api import (
    ADMIN,
    Identity,
    TokenConfigError,
    TokenFile,
    TokenSource,
    TokenStore,
    create_app,
    hash_token,
)
from kaizen.api.auth import load_token_file, main, tokens_from_env
from kaizen.api.token_admin import add_token, list_tokens, revoke_tokens
from kaizen.api.tokens_file import TokenRecord, parse_tokens, read_store

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECRET_HASH = hash_token("never-shown-token")


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "tok_0123456789abcdef",
        "user": "alice",
        "role": "user",
        "hash": SECRET_HASH,
        "created_at": "2026-01-01T00:00:00+00:00",
        "expires_at": None,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def _parse(data: object) -> list[TokenRecord]:
    return parse_tokens(data, "token file 't.json'", legacy_created_at=NOW)


def test_hash_token_is_sha256_hex() -> None:
    assert hash_token("s3cret") == hashlib.sha256(b"s3cret").hexdigest()
    for bad in ("", " s3cret", "s3cret\n"):
        with pytest.raises(TokenConfigError):
            hash_token(bad)


def test_store_finds_the_user_of_a_token() -> None:
    store = TokenStore({hash_token("a-token"): "alice", hash_token("b-token").upper(): "bob"})
    assert len(store) == 2
    assert store.user_for("a-token") == "alice"
    assert store.user_for("b-token") == "bob"
    assert store.identify("b-token") == Identity("bob", "user")
    assert store.user_for("c-token") is None
    assert store.user_for("") is None
    assert store.user_for(hash_token("a-token")) is None  # the hash itself is not a token
    assert hash_token("a-token") not in repr(store)


@pytest.mark.parametrize(
    "entries",
    [{"not-hex": "alice"}, {"ab" * 31: "alice"}, {hash_token("t"): ""}, {hash_token("t"): 7}],
)
def test_store_rejects_malformed_entries(entries: dict[str, object]) -> None:
    with pytest.raises(TokenConfigError):
        TokenStore(entries)  # type: ignore[arg-type]


def test_merged_stores() -> None:
    merged = TokenStore.merged(
        [TokenStore({hash_token("a"): "x"}), TokenStore({hash_token("b"): "y"})]
    )
    assert (merged.user_for("a"), merged.user_for("b"), len(merged)) == ("x", "y", 2)


def test_identity_roles() -> None:
    assert Identity("ann").role == "user" and not Identity("ann").is_admin
    assert Identity("root", ADMIN).is_admin


def test_expired_tokens_never_authenticate() -> None:
    store = TokenStore.of(
        [
            (hash_token("old"), Identity("ann"), NOW - timedelta(seconds=1)),
            (hash_token("edge"), Identity("bea"), NOW),
            (hash_token("live"), Identity("cy", ADMIN), NOW + timedelta(seconds=1)),
            (hash_token("forever"), Identity("dee"), None),
        ]
    )
    assert store.identify("old", now=NOW) is None
    assert store.identify("edge", now=NOW) is None  # expires_at itself is already too late
    assert store.identify("live", now=NOW) == Identity("cy", ADMIN)
    assert store.identify("forever", now=NOW + timedelta(days=10_000)) == Identity("dee")
    clock = datetime.now(UTC)
    by_clock = TokenStore.of(
        [
            (hash_token("past"), Identity("ann"), clock - timedelta(hours=1)),
            (hash_token("future"), Identity("bea"), clock + timedelta(hours=1)),
        ]
    )
    assert (by_clock.user_for("past"), by_clock.user_for("future")) == (None, "bea")
    with pytest.raises(TokenConfigError, match="timezone-aware"):
        TokenStore.of([(hash_token("x"), Identity("x"), datetime(2030, 1, 1))])


def test_a_token_reused_for_another_role_is_refused_even_when_one_expired() -> None:
    with pytest.raises(TokenConfigError, match=r"'ann' \(user\) and 'ann' \(admin\)"):
        TokenStore.of(
            [
                (hash_token("t"), Identity("ann"), NOW - timedelta(days=1)),
                (hash_token("t"), Identity("ann", ADMIN), None),
            ]
        )


def test_token_sources_are_a_protocol() -> None:
    class Fixed:
        def identify(self, token: str) -> Identity | None:
            return Identity("fixed") if token == "ok" else None

    assert isinstance(TokenStore({}), TokenSource)
    assert isinstance(Fixed(), TokenSource)
    assert not isinstance({}, TokenSource)
    source = Fixed()
    assert create_app("sqlite:///unused.db", tokens=source).state.tokens is source
    store = create_app("sqlite:///unused.db", tokens={hash_token("m"): "map"}).state.tokens
    assert store.identify("m") == Identity("map")
    with pytest.raises(TokenConfigError, match="identify"):
        create_app("sqlite:///unused.db", tokens=["not", "tokens"])  # type: ignore[arg-type]


def test_the_package_imports_create_app_lazily() -> None:
    assert kaizen.api.create_app is create_app
    with pytest.raises(AttributeError, match="no_such_name"):
        kaizen.api.no_such_name  # noqa: B018


def test_token_files_json_and_toml(tmp_path: Path) -> None:
    json_file = tmp_path / "tokens.json"
    json_file.write_text(json.dumps({hash_token("j-token"): "jane"}))
    assert load_token_file(json_file).user_for("j-token") == "jane"
    toml_file = tmp_path / "tokens.toml"
    toml_file.write_text(f'"{hash_token("t-token")}" = "tom"\n')
    assert load_token_file(str(toml_file)).user_for("t-token") == "tom"


def test_new_format_in_json_and_toml(tmp_path: Path) -> None:
    json_file = tmp_path / "tokens.json"
    body = {"version": 1, "tokens": [_record(role="admin", expires_at="2099-01-01T00:00:00Z")]}
    json_file.write_text(json.dumps(body))
    (record,) = list_tokens(json_file)
    assert record.expires_at == datetime(2099, 1, 1, tzinfo=UTC)
    assert read_store(json_file).identify("never-shown-token") == Identity("alice", ADMIN)
    assert SECRET_HASH not in repr(record)
    toml_file = tmp_path / "tokens.toml"
    toml_file.write_text(
        "version = 1\n[[tokens]]\n"
        f'id = "tok_1"\nuser = "tom"\nhash = "{SECRET_HASH}"\n'
        "created_at = 2026-01-01T00:00:00+02:00\nexpires_at = 2099-01-01T00:00:00Z\n"
    )
    (record,) = list_tokens(toml_file)
    assert (record.user, record.role) == ("tom", "user")
    assert record.created_at == datetime(2025, 12, 31, 22, tzinfo=UTC)
    assert record.created_at.tzinfo is UTC


def test_legacy_records_have_stable_ids_and_no_expiry(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps({SECRET_HASH.upper(): "alice"}))
    first, second = list_tokens(file), list_tokens(file)
    assert first == second
    (record,) = first
    assert record.id.startswith("tok_") and SECRET_HASH[:8] not in record.id
    assert (record.user, record.role, record.hash, record.expires_at) == (
        "alice",
        "user",
        SECRET_HASH,
        None,
    )
    assert record.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([_record()], "must hold a JSON object"),
        ({"version": 2, "tokens": []}, "unsupported version"),
        ({"version": True, "tokens": []}, "unsupported version"),
        ({"tokens": []}, "unsupported version"),
        ({"version": 1, "tokens": {}}, "list of tokens"),
        ({"version": 1, "tokens": [], "extra": 1}, "list of tokens"),
        ({"version": 1, "tokens": ["x"]}, r"tokens\[0\]: expected an object"),
        ({"version": 1, "tokens": [_record(**{SECRET_HASH: 1})]}, "unknown field"),
        ({"version": 1, "tokens": [_record(hash=...)]}, "missing field.*hash"),
        ({"version": 1, "tokens": [_record(id="has space")]}, "id must be"),
        ({"version": 1, "tokens": [_record(id=7)]}, "id must be"),
        ({"version": 1, "tokens": [_record(user="")]}, "user id"),
        ({"version": 1, "tokens": [_record(role="root")]}, "role must be one of user, admin"),
        ({"version": 1, "tokens": [_record(hash=SECRET_HASH[:-1])]}, "sha256"),
        ({"version": 1, "tokens": [_record(created_at="yesterday")]}, "created_at: not an ISO"),
        ({"version": 1, "tokens": [_record(created_at="2026-01-01T00:00")]}, "UTC offset"),
        ({"version": 1, "tokens": [_record(created_at=5)]}, "UTC offset"),
        ({"version": 1, "tokens": [_record(expires_at="soon")]}, "expires_at"),
        (
            {"version": 1, "tokens": [_record(expires_at="9999-12-31T23:59:59-05:00")]},
            "expires_at: the datetime is out of range",
        ),
        ({"version": 1, "tokens": [_record(user="alice ")]}, "surrounding whitespace"),
        ({"version": 1, "tokens": [_record(), _record(hash=hash_token("x"))]}, "stored twice"),
        ({"version": 1, "tokens": [_record(), _record(id="tok_other")]}, "stored twice"),
        ({"abc": "x"}, "sha256"),
        ({SECRET_HASH: ""}, "user id"),
    ],
)
def test_malformed_token_files_never_echo_a_hash(data: object, message: str) -> None:
    with pytest.raises(TokenConfigError, match=message) as raised:
        _parse(data)
    assert SECRET_HASH not in str(raised.value) and SECRET_HASH[:16] not in str(raised.value)
    assert "t.json" in str(raised.value)


@pytest.mark.parametrize(
    "content", [b"{not json", b"[1, 2]", b'{"abc": "x"}', b"\xff\xfe", b"[" * 100_000]
)
def test_bad_token_files(tmp_path: Path, content: bytes) -> None:
    file = tmp_path / "tokens.json"
    file.write_bytes(content)
    with pytest.raises(TokenConfigError):
        load_token_file(file)
    with pytest.raises(TokenConfigError, match="cannot read"):
        load_token_file(tmp_path / "missing.json")


def test_tokens_from_env() -> None:
    store = tokens_from_env(" alice=tok-a, bob=tok-b\ncarol=tok=c ")
    assert store.user_for("tok-a") == "alice"
    assert store.user_for("tok-b") == "bob"
    assert store.user_for("tok=c") == "carol"
    assert len(tokens_from_env("")) == 0
    for bad in ("alice", "=tok", "alice=", ":admin=tok"):
        with pytest.raises(TokenConfigError):
            tokens_from_env(bad)


def test_tokens_from_env_with_roles() -> None:
    store = tokens_from_env("root:admin=t-1 ann:user=t-2 svc:deploy=t-3 a:b:admin=t-4")
    assert store.identify("t-1") == Identity("root", ADMIN)
    assert store.identify("t-2") == Identity("ann", "user")
    assert store.identify("t-3") == Identity("svc:deploy", "user")  # not a role: part of the id
    assert store.identify("t-4") == Identity("a:b", ADMIN)


def test_env_errors_never_echo_a_token() -> None:
    with pytest.raises(TokenConfigError) as raised:
        tokens_from_env("alice=ok-token,super-secret-value")
    assert "super-secret-value" not in str(raised.value)
    with pytest.raises(TokenConfigError) as raised:
        tokens_from_env("=super-secret-value")
    assert "super-secret-value" not in str(raised.value)


def test_token_file_reloads_a_revocation(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    alice, record = add_token(file, "alice")
    bob, _ = add_token(file, "bob", role=ADMIN)
    source = TokenFile(file, extra=tokens_from_env("envy=env-token"))
    assert (source.path, len(source)) == (file, 3)
    assert source.identify(alice) == Identity("alice")
    assert source.user_for(bob) == "bob"
    revoke_tokens(file, record.id)
    assert source.identify(alice) is None  # the same source, no restart
    assert source.identify(bob) == Identity("bob", ADMIN)
    assert source.user_for("env-token") == "envy"
    assert source.user_for(alice) is None
    carol, _ = add_token(file, "carol")
    assert source.identify(carol) == Identity("carol")
    assert str(file) in repr(source) and record.hash not in repr(source)


def test_token_file_notices_an_in_place_edit_of_the_same_size(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps({hash_token("token-1"): "alice"}))
    source = TokenFile(file)
    assert source.user_for("token-1") == "alice"
    before = file.stat()
    with file.open("r+") as out:  # same inode, same size
        out.write(json.dumps({hash_token("token-2"): "alice"}))
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert file.stat().st_size == before.st_size and file.stat().st_ino == before.st_ino
    assert source.user_for("token-1") is None
    assert source.user_for("token-2") == "alice"


def test_a_broken_reload_keeps_the_last_good_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "tokens.json"
    token, record = add_token(file, "alice")
    source = TokenFile(file)
    caplog.set_level(logging.INFO, logger="kaizen.api")
    file.write_text(json.dumps({"version": 1, "tokens": [{**record.to_json(), "role": "x"}]}))
    assert source.identify(token) == Identity("alice")
    assert source.identify(token) == Identity("alice")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per change, not once per request
    assert "keeping the 1 token(s)" in warnings[0].getMessage()
    file.unlink()  # deleting the file revokes every token in it
    assert source.identify(token) is None
    assert len(source) == 0
    assert "is gone" in caplog.records[-1].getMessage()
    file.write_text(json.dumps({hash_token("fresh"): "bob"}))
    assert source.identify(token) is None
    assert source.user_for("fresh") == "bob"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged and record.hash not in logged and hash_token("fresh") not in logged
    assert "reloaded token file" in logged


def test_token_file_must_be_readable_at_start(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigError, match="cannot read"):
        TokenFile(tmp_path / "missing.json")


def test_hash_helper_reads_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert main() == 0
    assert capsys.readouterr().out.strip() == hash_token("s3cret")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main() == 2
    assert "error" in capsys.readouterr().err


def test_python_m_kaizen_api_prints_the_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    monkeypatch.setattr("sys.argv", ["kaizen.api"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("kaizen.api", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == hash_token("s3cret")


def test_python_m_kaizen_api_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m kaizen.api" in out and "sha256" in out and "kaizen tokens" in out
    done = subprocess.run(
        [sys.executable, "-m", "kaizen.api", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "stdin" in done.stdout


def test_on_a_terminal_it_prompts_on_stderr_and_does_not_echo() -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kaizen.api"],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # no controlling terminal: getpass uses stdin
        )
        assert proc.stderr is not None
        prompt = b""
        while b": " not in prompt:
            chunk = os.read(proc.stderr.fileno(), 100)
            assert chunk, "no prompt"
            prompt += chunk
        os.write(master, b"s3cret\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    assert b"token" in prompt
    assert out.decode().strip() == hash_token("s3cret")
    assert b"s3cret" not in prompt + err


def test_one_token_for_two_identities_is_refused() -> None:
    with pytest.raises(
        TokenConfigError, match=r"configured twice .*'root' \(admin\) and 'bob' \(user\)"
    ):
        tokens_from_env("root:admin=same-token bob=same-token")
    with pytest.raises(TokenConfigError, match="configured twice"):
        TokenStore.merged([tokens_from_env("alice=t1"), TokenStore({hash_token("t1"): "eve"})])
    with pytest.raises(TokenConfigError, match="configured twice"):
        tokens_from_env("alice=t1 alice:admin=t1")  # same user, another role
    assert tokens_from_env("alice=t1 alice=t1").user_for("t1") == "alice"  # harmless repeat
