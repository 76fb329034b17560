"""A server refusing the database or the credentials: :class:`DatabaseRefusedError`,
naming the URL without the password, never retried; refused and silent ports."""

from __future__ import annotations

import pytest

from dataflow import (
    ConfigurationError,
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlow,
    RetryPolicy,
    TimeoutError,
)
from dataflow.urls import parse_url
from refusals import SECRET, closed_port, refusals, refused_url, silent_port


def _thing(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str

    return Thing


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_a_refusal_names_the_database_without_the_password(db_url: str) -> None:
    for what in refusals(parse_url(db_url).family):
        url = refused_url(db_url, what)
        db = DataFlow(url, connect_timeout=5)
        thing = _thing(db)
        with pytest.raises(DatabaseRefusedError) as info:
            await db.count(thing)
        message = str(info.value)
        assert isinstance(info.value, ConfigurationError)  # what it was before: still caught
        assert not isinstance(info.value, ConnectionLostError)  # so no read retries it
        assert message.startswith(f"cannot use database {parse_url(url).masked}: "), message
        assert SECRET not in message and SECRET not in repr(info.value)
        assert "(10" not in message  # MySQL's (code, "text") tuple is said as a sentence
        await db.close()


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_a_retry_policy_does_not_retry_a_refusal(db_url: str) -> None:
    db = DataFlow(refused_url(db_url, "database"), connect_timeout=5)
    thing = _thing(db)
    tries = 0

    async def count() -> int:
        nonlocal tries
        tries += 1
        return await db.count(thing)

    with pytest.raises(DatabaseRefusedError):
        await RetryPolicy(attempts=5, base_delay=0).run(count)
    assert tries == 1
    await db.close()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_a_closed_port_says_connection_refused(scheme: str) -> None:
    url = f"{scheme}://user:{SECRET}@127.0.0.1:{closed_port()}/x"
    db = DataFlow(url, connect_timeout=5)
    with pytest.raises(ConnectionLostError) as info:
        await db.count(_thing(db))
    assert str(info.value) == f"cannot reach database {parse_url(url).masked}: connection refused"
    await db.close()


@pytest.mark.parametrize("scheme", ["postgresql", "mysql"])
async def test_a_silent_port_times_out_connecting(scheme: str) -> None:
    with silent_port() as port:
        url = f"{scheme}://user:{SECRET}@127.0.0.1:{port}/x"
        db = DataFlow(url, connect_timeout=0.3)
        with pytest.raises(TimeoutError) as info:
            await db.count(_thing(db))
        await db.close()
    assert info.value.what == "connect" and parse_url(url).masked in str(info.value)
    assert SECRET not in str(info.value)
