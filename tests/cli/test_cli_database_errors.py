"""Every database error is exit 6, one line naming the URL without its password."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import run

from dataflow.urls import parse_url
from refusals import SECRET, closed_port, refusals, refused_url, silent_port

#: Commands that only read, and commands that write (which set the database up).
COMMANDS = [
    ("approvals", "list"),
    ("sessions", "cleanup"),
    ("policies", "set", "a", "--approvers", "b"),
]


def _one_line_error(err: str, url: str) -> None:
    assert err.startswith("kaizen: error: ") and err.count("\n") == 1, err
    assert parse_url(url).masked in err and SECRET not in err and "Traceback" not in err


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
def test_a_server_refusing_the_database_or_credentials(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for what in refusals(parse_url(db_url).family):
        url = refused_url(db_url, what)
        for argv in COMMANDS:
            code, out, err = run(capsys, "--db", url, *argv)
            assert code == 6 and out == "", (what, argv, err)
            _one_line_error(err, url)
            assert "cannot use database" in err


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_closed_port(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{scheme}://user:{SECRET}@127.0.0.1:{closed_port()}/x"
    for argv in COMMANDS:
        code, _, err = run(capsys, "--db", url, *argv)
        assert code == 6
        _one_line_error(err, url)
        assert err.rstrip().endswith("connection refused")


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
def test_a_server_that_never_answers(scheme: str, capsys: pytest.CaptureFixture[str]) -> None:
    with silent_port() as port:
        url = f"{scheme}://user:{SECRET}@127.0.0.1:{port}/x?connect_timeout=0.3"
        code, _, err = run(capsys, "--db", url, "approvals", "list")
    assert code == 6
    _one_line_error(err, url)
    assert "timed out" in err and "(connect_timeout)" in err


def test_a_missing_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.db"
    code, out, err = run(capsys, "--db", f"sqlite:///{path}", "approvals", "list")
    assert code == 6 and out == ""
    assert err == (
        f"kaizen: error: no database at {path}: nothing to read there "
        "(check --db, $KAIZEN_DATABASE_URL or $DATABASE_URL)\n"
    )
    assert not path.exists()


def test_a_sqlite_file_that_cannot_be_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'k.db'}"
    code, _, err = run(capsys, "--db", url, "sessions", "cleanup")
    assert code == 6 and err.startswith(f"kaizen: error: cannot reach database {url}")
