"""The small connection pool: waiting, hand-over, broken connections, close."""

from __future__ import annotations

import asyncio

import pytest

from dataflow import ConnectionLostError, DataFlow, DataFlowError
from dataflow.dialects.pool import Pool


class _Conn:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False


class _Factory:
    def __init__(self) -> None:
        self.opened: list[_Conn] = []
        self.fail_next = False

    async def connect(self) -> _Conn:
        await asyncio.sleep(0)
        if self.fail_next:
            self.fail_next = False
            raise OSError("refused")
        conn = _Conn(len(self.opened))
        self.opened.append(conn)
        return conn

    async def close(self, conn: _Conn) -> None:
        conn.closed = True


async def test_reuses_idle_connections_lifo() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=2)
    a = await pool.get()
    pool.put(a, broken=False)
    assert await pool.get() is a
    assert len(f.opened) == 1


async def test_waiter_gets_released_connection_when_full() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1)
    a = await pool.get()
    waiter = asyncio.create_task(pool.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    pool.put(a, broken=False)
    assert await asyncio.wait_for(waiter, 5) is a
    assert len(f.opened) == 1


async def test_broken_connection_is_replaced_for_a_waiter() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1)
    a = await pool.get()
    waiter = asyncio.create_task(pool.get())
    await asyncio.sleep(0.01)
    pool.put(a, broken=True)
    b = await asyncio.wait_for(waiter, 5)
    assert b is not a and len(f.opened) == 2
    await asyncio.sleep(0.01)
    assert a.closed


async def test_failed_connect_frees_its_slot() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1)
    f.fail_next = True
    with pytest.raises(OSError):
        await pool.get()
    assert (await pool.get()).n == 0


async def test_cancelled_waiter_does_not_leak_the_connection() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1)
    a = await pool.get()
    waiter = asyncio.create_task(pool.get())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    pool.put(a, broken=False)
    assert await asyncio.wait_for(pool.get(), 5) is a


async def test_discard_idle_and_close() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=3)
    a, b = await pool.get(), await pool.get()
    pool.put(a, broken=False)
    pool.discard_idle()
    await asyncio.sleep(0.01)
    assert a.closed and not b.closed
    waiter_pool = Pool(f.connect, f.close, max_size=1)
    c = await waiter_pool.get()
    waiter = asyncio.create_task(waiter_pool.get())
    await asyncio.sleep(0.01)
    await waiter_pool.close()
    with pytest.raises(ConnectionLostError):
        await waiter
    waiter_pool.put(c, broken=False)  # returned after close: closed, not kept
    await asyncio.sleep(0.01)
    assert c.closed
    with pytest.raises(ConnectionLostError):
        await waiter_pool.get()
    pool.put(b, broken=False)
    await pool.close()
    assert b.closed


async def test_many_concurrent_operations_share_a_small_pool(db_url: str) -> None:
    db = DataFlow(db_url, pool_size=2)

    @db.model
    class Counter:
        id: str
        n: int = 0

    try:
        await asyncio.gather(*(db.insert(Counter, {"id": f"c{i}", "n": i}) for i in range(40)))
        counts = await asyncio.gather(*(db.count(Counter, {"n": {"$lt": i}}) for i in range(40)))
        assert counts == list(range(40))
    finally:
        await db.close()


async def test_ping_answers_or_raises_connection_lost(db_url: str) -> None:
    async with DataFlow(db_url) as db:
        await db.ping()
    down = DataFlow("postgresql://user:s3cret@127.0.0.1:1/nowhere", connect_timeout=2)
    with pytest.raises(ConnectionLostError) as exc:
        await down.ping()
    assert "s3cret" not in str(exc.value)
    await down.close()


async def test_a_free_slot_is_passed_on_when_its_waiter_gives_up() -> None:
    # The slot of a broken connection goes to the first waiter; if that waiter times
    # out or is cancelled before it runs, the next waiter must get the slot instead.
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=5)
    a = await pool.get()
    first = asyncio.create_task(pool.get())
    second = asyncio.create_task(pool.get())
    await asyncio.sleep(0.01)
    pool.put(a, broken=True)  # wakes `first` with "a slot is free"
    first.cancel()  # ... which gives up before it could use it
    with pytest.raises(asyncio.CancelledError):
        await first
    conn = await asyncio.wait_for(second, 2)
    assert conn is not a and pool.size == 1


async def test_waiting_ends_at_the_timeout_with_our_error() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=0.05)
    held = await pool.get()
    with pytest.raises(ConnectionLostError, match="no free connection"):
        await pool.get()
    pool.put(held, broken=False)
    assert await pool.get() is held


async def test_a_transaction_waiting_for_its_own_pool_is_refused_at_once() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=60)
    held = await pool.get(transaction=True)
    with pytest.raises(DataFlowError, match="use tx, not db"):
        await pool.get()
    pool.put(held, broken=False)
    again = await pool.get(transaction=True)  # the count was released with it
    pool.put(again, broken=False)
    assert await pool.get() is held


async def test_each_waiter_times_out_at_its_own_deadline() -> None:
    # One timer serves every waiter: it fires at the first deadline, fails that wait
    # only, and is armed again for the next waiter's.
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=0.3)
    held = await pool.get()
    loop = asyncio.get_running_loop()
    start = loop.time()
    first = asyncio.create_task(pool.get())
    await asyncio.sleep(0.15)
    second = asyncio.create_task(pool.get())
    gone = asyncio.create_task(pool.get())
    third = asyncio.create_task(pool.get())
    await asyncio.sleep(0)
    gone.cancel()  # still queued when the timer fires: skipped
    with pytest.raises(ConnectionLostError, match=r"no free connection after 0\.3 s"):
        await first
    assert 0.25 <= loop.time() - start < 0.42 and not second.done() and not third.done()
    for later in (second, third):
        with pytest.raises(ConnectionLostError, match="no free connection"):
            await later
    assert loop.time() - start >= 0.4
    assert gone.cancelled()
    await asyncio.sleep(0)  # the timer, armed for nobody now, has not been re-armed
    assert pool._timer is None
    pool.put(held, broken=False)
    assert await pool.get() is held


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    # A waiter told of a free slot that another caller took first waits again with its
    # first deadline, which can be earlier than the one the timer was armed for.
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=30)
    held = await pool.get()
    loop = asyncio.get_running_loop()
    patient = asyncio.create_task(pool.get())
    await asyncio.sleep(0)
    with pytest.raises(ConnectionLostError, match="no free connection"):
        await pool._wait(loop, loop.time() + 0.05)
    assert not patient.done()
    assert pool._timer is not None and pool._timer.when() > loop.time() + 20
    pool.put(held, broken=False)
    assert await asyncio.wait_for(patient, 2) is held
    pool.put(held, broken=False)
    await pool.close()
    assert pool._timer is None


async def test_a_handed_connection_is_not_lost_to_the_timer() -> None:
    # Handed over in the same loop iteration as the deadline passes: the waiter keeps it.
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=0.05)
    held = await pool.get()
    waiter = asyncio.create_task(pool.get())
    await asyncio.sleep(0)
    pool.put(held, broken=False)
    await asyncio.sleep(0.1)  # the timer fires after the hand-over: nothing to fail
    assert await waiter is held


async def test_a_transaction_may_wait_for_a_connection_others_hold() -> None:
    # Holding a transaction and waiting is no deadlock while a connection can come back.
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=2, timeout=5)

    async def in_transaction() -> _Conn:
        tx = await pool.get(transaction=True)
        other = await pool.get()  # waits: the pool's other connection is held below
        pool.put(other, broken=False)
        return tx

    held = await pool.get()
    task = asyncio.create_task(in_transaction())
    await asyncio.sleep(0.01)
    assert not task.done() and len(pool._waiting) == 1
    plain = asyncio.create_task(pool.get())  # a task without a transaction waits too
    await asyncio.sleep(0.01)
    assert len(pool._waiting) == 1
    pool.put(held, broken=False)
    tx = await asyncio.wait_for(task, 2)
    assert not pool._waiting
    assert await asyncio.wait_for(plain, 2) is held
    pool.put(tx, broken=False)


async def test_a_connection_handed_to_a_cancelled_waiter_goes_to_the_next() -> None:
    f = _Factory()
    pool = Pool(f.connect, f.close, max_size=1, timeout=5)
    held = await pool.get()
    first = asyncio.create_task(pool.get())
    second = asyncio.create_task(pool.get())
    await asyncio.sleep(0)
    pool.put(held, broken=False)  # handed to `first`...
    first.cancel()  # ... cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 2) is held
    assert len(f.opened) == 1
