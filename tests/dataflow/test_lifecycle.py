"""Handle lifecycle: context manager, close, lazy connect, event loops, URL defaults."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import warnings
from pathlib import Path

import pytest
from df_support import RawDB, dialect_of

import dataflow.core
from dataflow import ConfigurationError, ConnectionLostError, DataFlow, InMemoryDatabaseWarning


def _declare(db: DataFlow) -> type:
    @db.model
    class Thing:
        id: str
        n: int = 0

    return Thing


async def test_async_with_opens_and_closes(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        assert db.dialect_name == dialect_of(db_url)
        thing = _declare(db)
        await db.insert(thing, {"id": "a"})
    # Closed handles reconnect when used again; the data persisted.
    assert await db.count(thing) == 1
    await db.close()
    async with DataFlow(db_url) as again:
        _declare(again)
        assert (await again.get("Thing", "a")) is not None


async def test_close_twice_and_close_unused_are_harmless(db_url: str) -> None:
    unused = DataFlow(db_url)
    await unused.close()
    await unused.close()
    db = DataFlow(db_url)
    _declare(db)
    await db.insert("Thing", {"id": "a"})
    await db.close()
    await db.close()
    async with db:
        pass
    await db.close()


async def test_exceptions_inside_async_with_propagate_and_close(db_url: str) -> None:
    with pytest.raises(KeyError):
        async with DataFlow(db_url) as db:
            _declare(db)
            await db.insert("Thing", {"id": "a"})
            raise KeyError("boom")
    async with DataFlow(db_url) as db:
        _declare(db)
        assert await db.count("Thing") == 1


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@127.0.0.1:1/nowhere",
        "mysql://user@127.0.0.1:1/nowhere",
        "sqlite:////proc/no/such/dir/x.db",
    ],
    ids=["postgresql", "mysql", "sqlite"],
)
async def test_connecting_is_lazy_and_failure_is_a_connection_error(url: str) -> None:
    db = DataFlow(url, connect_timeout=3)  # no I/O here
    _declare(db)
    with pytest.raises(ConnectionLostError):
        await db.count("Thing")
    with pytest.raises(ConnectionLostError):  # still clean on the second try
        await db.insert("Thing", {"id": "a"})
    await db.close()
    await db.close()


def test_one_handle_across_two_event_loops(db_url: str) -> None:
    db = DataFlow(db_url)
    _declare(db)

    async def first() -> None:
        await db.insert("Thing", {"id": "a", "n": 1})
        assert await db.count("Thing") == 1

    async def second() -> None:
        await db.insert("Thing", {"id": "b", "n": 2})
        rows = await db.select("Thing", order_by="id")
        assert [(r["id"], r["n"]) for r in rows] == [("a", 1), ("b", 2)]
        async with db.transaction() as tx:
            await tx.update("Thing", "a", {"n": 10})
        await db.close()

    asyncio.run(first())
    asyncio.run(second())
    # And a third loop, after close, still works.
    asyncio.run(_count_is(db, 2))
    asyncio.run(db.close())


async def _count_is(db: DataFlow, expected: int) -> None:
    try:
        assert await db.count("Thing") == expected
    finally:
        await db.close()


def test_one_handle_used_from_a_thread_with_its_own_loop(db_url: str) -> None:
    db = DataFlow(db_url)
    _declare(db)
    asyncio.run(db.insert("Thing", {"id": "main"}))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            asyncio.run(_thread_work(db))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert not thread.is_alive() and errors == []
    asyncio.run(_count_is(db, 2))


async def _thread_work(db: DataFlow) -> None:
    await db.insert("Thing", {"id": "thread"})
    assert await db.count("Thing") == 2


def test_normal_use_leaves_no_warnings(db_url: str) -> None:
    gc.collect()  # leftovers of earlier tests are not this test's business
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unraisable: list[object] = []
        hook, sys.unraisablehook = sys.unraisablehook, unraisable.append

        async def main() -> None:
            async with DataFlow(db_url) as db:
                _declare(db)
                await db.insert("Thing", {"id": "a"})
                await asyncio.gather(*(db.get("Thing", "a") for _ in range(5)))

        try:
            asyncio.run(main())
            gc.collect()
        finally:
            sys.unraisablehook = hook
    assert unraisable == []


async def _our_connections(raw: RawDB) -> int:
    if raw.dialect == "postgresql":
        sql = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    else:
        sql = (
            "SELECT count(*) FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
    return int(await raw.scalar(sql))


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_close_leaves_no_server_connection(db_url: str, raw: RawDB) -> None:
    db = DataFlow(db_url)
    _declare(db)
    await asyncio.gather(*(db.insert("Thing", {"id": str(i)}) for i in range(5)))
    assert await _our_connections(raw) > 0
    await db.close()
    for _ in range(100):  # the server notices a client leaving asynchronously
        if await _our_connections(raw) == 0:
            break
        await asyncio.sleep(0.02)
    assert await _our_connections(raw) == 0


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
def test_close_releases_connections_of_an_earlier_event_loop(db_url: str) -> None:
    async def counted() -> int:
        raw = await RawDB(db_url).open()
        try:
            for _ in range(25):
                if await _our_connections(raw) == 0:
                    break
                await asyncio.sleep(0.02)
            return await _our_connections(raw)
        finally:
            await raw.close()

    db = DataFlow(db_url)
    _declare(db)
    asyncio.run(db.insert("Thing", {"id": "a"}))  # a first loop, left without close()
    asyncio.run(_count_is(db, 1))  # a second loop, closed properly
    assert asyncio.run(counted()) == 0


async def test_database_url_environment_variable_is_the_default(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    async with DataFlow() as db:
        assert db.dialect_name == dialect_of(db_url)
        _declare(db)
        await db.insert("Thing", {"id": "env"})
    async with DataFlow(db_url) as db:
        _declare(db)
        assert await db.get("Thing", "env") is not None


async def test_without_url_or_environment_it_is_in_memory_sqlite(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(dataflow.core, "_warned_in_memory", False)
    monkeypatch.chdir(tmp_path)
    with pytest.warns(InMemoryDatabaseWarning, match="vanishes"):
        db = DataFlow()
    async with db:
        assert db.dialect_name == "sqlite"
        assert ":memory:" in db.url
        _declare(db)
        await db.insert("Thing", {"id": "a"})
        assert await db.count("Thing") == 1
    async with DataFlow() as other:  # a fresh, empty database
        _declare(other)
        assert await other.count("Thing") == 0
    assert os.listdir(tmp_path) == []  # nothing written to disk


def test_the_in_memory_warning_comes_once_per_process_and_only_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(dataflow.core, "_warned_in_memory", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DataFlow("sqlite:///:memory:")  # asked for: no warning
        DataFlow()
        DataFlow()
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        DataFlow()
    found = [w for w in caught if issubclass(w.category, InMemoryDatabaseWarning)]
    assert len(found) == 1 and found[0].filename == __file__  # it points at the caller
    assert "$DATABASE_URL" in str(found[0].message)


async def test_relative_sqlite_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    async with DataFlow("sqlite:///sub/rel.db") as db:
        _declare(db)
        await db.insert("Thing", {"id": "a"})
    assert "rel.db" in os.listdir(tmp_path / "sub")


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u@127.0.0.1:1/x",
        "postgresql+asyncpg://u@127.0.0.1:1/x",
        "mariadb://u@127.0.0.1:1/x",
        "mysql+asyncmy://u@127.0.0.1:1/x",
        "sqlite+aiosqlite:///:memory:",
    ],
)
def test_url_spellings_are_accepted(url: str) -> None:
    db = DataFlow(url)
    assert db.dialect_name in ("postgresql", "mysql", "sqlite")


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("oracle://u@h/x", {}),
        ("not a url", {}),
        ("postgresql://u@h:notaport/x", {}),
        ("postgresql+nodriver://u@h/x", {}),
        ("sqlite:///:memory:", {"bogus_option": 1}),
    ],
)
def test_bad_urls_and_options_raise_configuration_error(url: str, options: dict[str, int]) -> None:
    with pytest.raises(ConfigurationError):
        DataFlow(url, **options)


def test_in_memory_database_is_usable_again_after_close() -> None:
    db = DataFlow("sqlite:///:memory:")
    _declare(db)

    async def first() -> None:
        await db.insert("Thing", {"id": "a"})
        assert await db.count("Thing") == 1
        await db.close()

    async def second() -> None:
        # Closing discarded the in-memory data, but the handle works again.
        assert await db.count("Thing") == 0
        await db.insert("Thing", {"id": "b"})
        assert await db.count("Thing") == 1
        await db.close()

    asyncio.run(first())
    asyncio.run(second())
