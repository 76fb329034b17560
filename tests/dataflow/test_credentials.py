"""Passwords never appear in reprs, URLs, error messages, tracebacks or logs."""

from __future__ import annotations

import logging
import traceback

import pytest

from dataflow import ConfigurationError, ConnectionLostError, DataFlow

SECRET = "s3cret"


def _everything_said(exc: BaseException) -> str:
    """The full formatted traceback with its chained causes, plus each message."""
    text = "".join(traceback.format_exception(exc))
    seen = exc
    while seen is not None:
        text += repr(seen) + str(seen) + repr(getattr(seen, "args", ()))
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@127.0.0.1:1/x",
        f"postgres://user:{SECRET}@127.0.0.1:1/x",
        f"mysql://user:{SECRET}@127.0.0.1:1/x",
        f"mariadb://user:{SECRET}@127.0.0.1:1/x",
        f"postgresql+asyncpg://user:{SECRET}@127.0.0.1:1/x?sslmode=disable",
    ],
)
async def test_unreachable_database_never_shows_the_password(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = DataFlow(url, connect_timeout=3)
    assert SECRET not in repr(db)
    assert SECRET not in db.url and SECRET not in str(db.url)
    assert "***" in db.url and "user" in db.url

    @db.model
    class Thing:
        id: str

    for call in (db.count(Thing), db.insert(Thing, {"id": "a"}), db.get(Thing, "a")):
        with pytest.raises(ConnectionLostError) as info:
            await call
        said = _everything_said(info.value)
        assert SECRET not in said
        assert "127.0.0.1" in str(info.value)  # still says which database
    assert SECRET not in caplog.text
    await db.close()


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_wrong_credentials_on_a_live_server(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    scheme, rest = db_url.split("://", 1)
    host_and_db = rest.split("@", 1)[1]
    url = f"{scheme}://no_such_user_x:{SECRET}@{host_and_db}"
    db = DataFlow(url, connect_timeout=5)

    @db.model
    class Thing:
        id: str

    with pytest.raises(ConfigurationError, match=r"cannot use database .*no_such_user_x") as info:
        await db.count(Thing)
    assert SECRET not in _everything_said(info.value)
    assert SECRET not in caplog.text
    assert SECRET not in repr(db)
    await db.close()


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_a_database_that_does_not_exist_is_a_configuration_error(db_url: str) -> None:
    url = db_url.rsplit("/", 1)[0] + "/no_such_database_x"
    db = DataFlow(url, connect_timeout=5)

    @db.model
    class Thing:
        id: str

    for _ in range(2):  # and again: nothing cached a broken state
        with pytest.raises(ConfigurationError, match=r"cannot use database .*no_such_database_x"):
            await db.count(Thing)
    await db.close()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://user:{SECRET}@host:notaport/x",
        f"mysql://user:{SECRET}@host:99999999999/x",
        f"oracle://user:{SECRET}@host/x",
        f"postgresql+nodriver://user:{SECRET}@host/x",
        f"mysql+nodriver://user:{SECRET}@host/x",
        f"user:{SECRET}@host/x",
    ],
)
def test_bad_urls_raise_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        DataFlow(url)
    assert SECRET not in _everything_said(info.value)


def test_password_with_special_characters_is_masked() -> None:
    db = DataFlow("postgresql://user:p%40ss%3Aw0rd@127.0.0.1:5432/x")
    assert "p@ss" not in repr(db) and "p%40ss" not in repr(db)
    assert "p@ss" not in db.url and "w0rd" not in db.url
    no_password = DataFlow("postgresql://user@127.0.0.1:5432/x")
    assert "***" not in no_password.url
