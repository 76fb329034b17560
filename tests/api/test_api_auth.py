"""Bearer tokens: hashing, stores, token files and the environment variable."""

from __future__ import annotations

import hashlib
import io
import json
import runpy
from pathlib import Path

import pytest

from kaizen.api import TokenConfigError, TokenStore, hash_token
from kaizen.api.auth import load_token_file, main, tokens_from_env


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
    assert store.user_for("c-token") is None
    assert store.user_for("") is None
    assert store.user_for(hash_token("a-token")) is None  # the hash itself is not a token


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


def test_token_files_json_and_toml(tmp_path: Path) -> None:
    json_file = tmp_path / "tokens.json"
    json_file.write_text(json.dumps({hash_token("j-token"): "jane"}))
    assert load_token_file(json_file).user_for("j-token") == "jane"
    toml_file = tmp_path / "tokens.toml"
    toml_file.write_text(f'"{hash_token("t-token")}" = "tom"\n')
    assert load_token_file(str(toml_file)).user_for("t-token") == "tom"


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"abc": "x"}'])
def test_bad_token_files(tmp_path: Path, content: str) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(content)
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
    for bad in ("alice", "=tok", "alice="):
        with pytest.raises(TokenConfigError):
            tokens_from_env(bad)


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
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("kaizen.api", run_name="__main__")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == hash_token("s3cret")
