"""The connection layer: every driver failure becomes our error, and a connection
whose state is unknown is never reused."""

from __future__ import annotations

import asyncio
import errno
import struct
from collections.abc import Awaitable, Sequence
from typing import Any

import pytest

from dataflow import (
    ConnectionLostError,
    DataFlow,
    DataFlowError,
    TimeoutError,
    ValidationError,
)
from dataflow.dialects.connection import Connection
from dataflow.dialects.pool import Pool, PooledBackend


class _Fake(Connection):
    """A connection whose raw calls do what the test says."""

    __slots__ = ("commits", "failure", "rollbacks")

    def __init__(self, dialect: Any, failure: BaseException | None = None) -> None:
        super().__init__(object(), dialect)
        self.failure = failure
        self.commits = self.rollbacks = 0

    async def _call(self) -> Any:
        if self.failure is not None:
            raise self.failure
        return []

    def _fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Any]]:
        return self._call()

    def _execute(self, sql: str, args: Sequence[Any]) -> Awaitable[int]:
        return self._call()

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]:
        return self._call()

    async def _begin(self) -> None:
        pass

    async def _commit(self) -> None:
        self.commits += 1
        await self._call()

    async def _rollback(self) -> None:
        self.rollbacks += 1


def _dialect(url: str) -> Any:
    return DataFlow(url).dialect


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "postgresql://u@h/x", "mysql://u@h/x"])
async def test_a_foreign_failure_in_the_driver_is_ours_and_breaks_the_connection(url: str) -> None:
    conn = _Fake(_dialect(url), struct.error("unpack requires a buffer of 4 bytes"))
    with pytest.raises(DataFlowError, match=r"unexpected failure of the .* driver: error") as info:
        await conn.fetch("SELECT 1", [])
    assert info.value.from_driver and isinstance(info.value.__cause__, struct.error)
    assert conn.broken and not conn.lost


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "postgresql://u@h/x", "mysql://u@h/x"])
async def test_cancellation_and_interrupts_pass_through(url: str) -> None:
    for failure in (asyncio.CancelledError(), KeyboardInterrupt()):
        conn = _Fake(_dialect(url), failure)
        with pytest.raises(type(failure)):
            await conn.execute("UPDATE t SET n = 1", [])
        assert conn.broken is type(conn).cancel_breaks


def test_postgresql_interface_errors() -> None:
    import asyncpg
    from asyncpg.exceptions._base import DataError as ClientDataError

    d = _dialect("postgresql://u@h/x")
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    closed = asyncpg.InterfaceError("cannot perform operation: connection is closed")
    assert d.classify(busy) is DataFlowError and d.breaks(busy)
    assert d.classify(closed) is ConnectionLostError
    assert d.classify(ClientDataError("invalid input for query argument $1")) is ValidationError
    assert not d.breaks(ClientDataError("invalid input"))


def test_mysql_protocol_errors_break_the_connection() -> None:
    import asyncmy.errors as errors

    d = _dialect("mysql://u@h/x")
    assert d.breaks(errors.InternalError(0, "Packet sequence number wrong"))
    assert d.breaks(errors.OperationalError(2014, "Commands out of sync"))
    assert not d.breaks(errors.IntegrityError(1062, "Duplicate entry"))


async def test_a_timeout_without_a_statement_limit_is_a_lost_connection() -> None:
    d = _dialect("postgresql://u@h/x")  # command_timeout off
    conn = _Fake(d, builtins_timeout())
    with pytest.raises(ConnectionLostError) as info:
        await conn.fetch("SELECT 1", [])
    assert not isinstance(info.value, TimeoutError) and conn.lost
    limited = _Fake(_dialect("postgresql://u@h/x?command_timeout=2"), builtins_timeout())
    with pytest.raises(TimeoutError, match="after 2 s"):
        await limited.fetch("SELECT 1", [])


def builtins_timeout() -> BaseException:
    return OSError(errno.ETIMEDOUT, "Connection timed out")  # a builtins.TimeoutError


async def test_a_failed_commit_is_rolled_back_before_the_connection_is_reused() -> None:
    d = _dialect("postgresql://u@h/x")
    conn = _Fake(d)
    pool: Pool[Connection] = Pool(lambda: _ready(conn), _nothing, 1)
    backend = PooledBackend(d, pool)
    tx = await backend.begin()
    conn.failure = _driver_refusal()
    with pytest.raises(DataFlowError):
        await backend.end(tx, None)
    assert conn.commits == 1 and conn.rollbacks == 1 and not conn.broken
    assert await pool.get() is conn  # ended cleanly, so it is reused


async def _ready(conn: Connection) -> Connection:
    return conn


async def _nothing(conn: Connection) -> None:
    return None


def _driver_refusal() -> BaseException:
    import asyncpg

    return asyncpg.exceptions.SerializationError("could not serialize access")
