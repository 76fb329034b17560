"""One DataFlow used from several threads, each with its own event loop: every loop
has connections of its own, so no thread's transaction touches another's writes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from dataflow import DataFlow

ROUNDS = 150


def _item(db: DataFlow) -> None:
    @db.model
    class Item:
        id: str
        by: str


def _in_threads(*work: Callable[[], Coroutine[Any, Any, None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(len(work))

    def run(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            start.wait()
            asyncio.run(fn())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(fn,)) for fn in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hangs"
    return errors


def test_rollbacks_in_one_thread_never_undo_another_threads_writes(db_url: str) -> None:
    db = DataFlow(db_url)
    _item(db)

    async def rolls_back() -> None:
        for i in range(ROUNDS):
            try:
                async with db.transaction() as tx:
                    await tx.insert("Item", {"id": f"a{i}", "by": "a"})
                    raise LookupError("undo")
            except LookupError:
                pass
        await db.close()

    async def autocommits() -> None:
        for i in range(ROUNDS):
            await db.insert("Item", {"id": f"b{i}", "by": "b"})
        await db.close()

    assert _in_threads(rolls_back, autocommits) == []

    async def check() -> None:
        assert await db.count("Item", {"by": "b"}) == ROUNDS  # every acknowledged write
        assert await db.count("Item", {"by": "a"}) == 0
        await db.close()

    asyncio.run(check())


def test_first_use_from_many_threads_at_once(db_url: str) -> None:
    db = DataFlow(db_url)
    _item(db)

    def worker(n: int) -> Callable[[], Coroutine[Any, Any, None]]:
        async def work() -> None:
            for i in range(10):
                await db.insert("Item", {"id": f"{n}-{i}", "by": str(n)})
                async with db.transaction() as tx:
                    await tx.count("Item")

        return work

    assert _in_threads(*(worker(n) for n in range(6))) == []

    async def check() -> None:
        assert await db.count("Item") == 60
        await db.close()

    asyncio.run(check())
