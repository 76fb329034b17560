"""Write batches: all steps or none, guarded steps, one round trip where the database allows."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest

from dataflow import (
    DataFlow,
    DataFlowError,
    DriverCall,
    DuplicateKeyError,
    Index,
    Step,
    ValidationError,
)


def _models(db: DataFlow) -> None:
    @db.model(indexes=[Index("tags", membership=True)])
    class Ticket:
        id: str
        seq: int
        state: str = "open"
        tags: list[str] | None = None

    @db.model
    class Event:
        id: str
        ticket_id: str
        seq: int
        what: str


def _counting(db: DataFlow) -> list[str]:
    """The SQL of every driver call (through the supported connection hook)."""
    seen: list[str] = []
    db.on_driver_call(lambda call: seen.append(call.sql))
    return seen


async def test_steps_apply_together(db: DataFlow) -> None:
    _models(db)
    batch = db.batch()
    t = batch.insert("Ticket", {"id": "t1", "seq": 0, "tags": ["a", "b", "a"]})
    e = batch.insert("Event", {"id": "e0", "ticket_id": "t1", "seq": 0, "what": "opened"})
    batch.notify("tickets", "t1")
    result = await batch.run()
    assert (result[t], result[e]) == (1, 1)
    assert (await db.get("Ticket", "t1") or {})["tags"] == ["a", "b", "a"]
    assert [r["id"] for r in await db.select("Ticket", {"tags": {"$contains": "b"}})] == ["t1"]
    assert await db.count("Event") == 1


async def test_guarded_steps_follow_their_guard(db: DataFlow) -> None:
    _models(db)
    await db.insert("Ticket", {"id": "t1", "seq": 0})

    async def move(seq: int, event: str) -> tuple[int, int]:
        batch = db.batch()
        moved = batch.update_where("Ticket", {"id": "t1", "seq": seq}, {"seq": seq + 1})
        logged = batch.insert(
            "Event", {"id": event, "ticket_id": "t1", "seq": seq + 1, "what": "x"}, when=moved
        )
        batch.notify("tickets", "t1", when=moved)
        result = await batch.run()
        return result[moved], result[logged]

    assert await move(0, "e1") == (1, 1)
    assert await move(0, "e2") == (0, 0)  # stale: nothing of it is written
    assert [r["id"] for r in await db.select("Event")] == ["e1"]
    # A chain: a guard guarded by a guard; a guarded delete and a guarded side-table insert.
    await db.insert("Ticket", {"id": "t0", "seq": 0})
    batch = db.batch()
    first = batch.update_where("Ticket", {"id": "t1", "seq": 1}, {"state": "held"})
    second = batch.update_where("Ticket", {"id": "t0", "seq": 0}, {"seq": 2}, when=first)
    gone = batch.delete_where("Event", {"ticket_id": "t1"}, when=second)
    new = batch.insert("Ticket", {"id": "t2", "seq": 0, "tags": ["z"]}, when=gone)
    result = await batch.run()
    assert [result[s] for s in (first, second, gone, new)] == [1, 1, 1, 1]
    assert await db.count("Event") == 0
    assert [r["id"] for r in await db.select("Ticket", {"tags": {"$contains": "z"}})] == ["t2"]
    batch = db.batch()
    none = batch.update_where("Ticket", {"id": "nope"}, {"seq": 9})
    skipped = batch.insert("Ticket", {"id": "t3", "seq": 0, "tags": ["q"]}, when=none)
    result = await batch.run()
    assert (result[none], result[skipped]) == (0, 0)
    assert await db.get("Ticket", "t3") is None
    assert await db.select("Ticket", {"tags": {"$contains": "q"}}) == []


async def test_a_failing_step_undoes_the_batch(db: DataFlow) -> None:
    _models(db)
    await db.insert("Ticket", {"id": "t1", "seq": 0})
    batch = db.batch()
    batch.update_where("Ticket", {"id": "t1"}, {"seq": 5})
    batch.insert("Event", {"id": "e1", "ticket_id": "t1", "seq": 5, "what": "x"})
    batch.insert("Ticket", {"id": "t1", "seq": 0})  # duplicate
    with pytest.raises(DuplicateKeyError):
        await batch.run()
    assert (await db.get("Ticket", "t1") or {})["seq"] == 0
    assert await db.count("Event") == 0
    # The connection it ran on is clean: the next batch commits.
    again = db.batch()
    step = again.update_where("Ticket", {"id": "t1"}, {"seq": 6})
    assert (await again.run())[step] == 1
    assert (await db.get("Ticket", "t1") or {})["seq"] == 6


async def test_an_update_of_a_side_table_field_replaces_its_rows(db: DataFlow) -> None:
    _models(db)
    await db.insert("Ticket", {"id": "t1", "seq": 0, "tags": ["a"]})
    await db.insert("Ticket", {"id": "t2", "seq": 0, "tags": ["a"]})
    assert await db.count("Event") == 0  # its table exists before counting
    calls = _counting(db)
    batch = db.batch()  # one record by id: its side rows replaced in the same trip
    moved = batch.update_where("Ticket", {"id": "t1", "seq": 0}, {"seq": 1, "tags": ["b", "c"]})
    batch.insert("Event", {"id": "e1", "ticket_id": "t1", "seq": 1, "what": "x"}, when=moved)
    stale = batch.update_where("Ticket", {"id": "t2", "seq": 5}, {"tags": ["z"]})
    result = await batch.run()
    assert (result[moved], result[stale]) == (1, 0)
    if db.dialect.supports_batch_script:
        assert len(calls) == 1
    assert [r["id"] for r in await db.select("Ticket", {"tags": {"$contains": "c"}})] == ["t1"]
    assert [r["id"] for r in await db.select("Ticket", {"tags": {"$contains": "a"}})] == ["t2"]
    assert await db.select("Ticket", {"tags": {"$contains": "z"}}) == []
    batch = db.batch()  # by anything else: one transaction, step by step
    batch.update_where("Ticket", {"seq": 0}, {"tags": ["q"]})
    await batch.run()
    assert [r["id"] for r in await db.select("Ticket", {"tags": {"$contains": "q"}})] == ["t2"]
    assert await db.count("Event") == 1


async def test_bad_input_is_refused_before_anything_is_sent(db: DataFlow) -> None:
    _models(db)
    batch = db.batch()
    with pytest.raises(ValidationError, match="missing required field"):
        batch.insert("Ticket", {"id": "t1"})
    with pytest.raises(ValidationError):
        batch.update_where("Ticket", {"id": "t1"}, {"nope": 1})
    with pytest.raises(ValidationError):
        batch.delete_where("Ticket", "t1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="step of the same batch"):
        batch.insert("Ticket", {"id": "t1", "seq": 0}, when=Step(3))
    batch.notify("c", "p")
    with pytest.raises(ValidationError, match="notification"):
        batch.insert("Ticket", {"id": "t1", "seq": 0}, when=Step(0))
    with pytest.raises(ValidationError, match="strings"):
        batch.notify("c", 1)  # type: ignore[arg-type]
    assert repr(await batch.run()) == "BatchResult([0])"  # only a notification: nothing to do
    with pytest.raises(DataFlowError, match="has run"):
        await batch.run()
    with pytest.raises(DataFlowError, match="has run"):
        batch.notify("c", "p")
    assert await db.count("Ticket") == 0


@pytest.mark.parametrize("steps", [1, 4])
async def test_one_round_trip_on_the_servers(db: DataFlow, steps: int) -> None:
    _models(db)
    await db.insert("Ticket", {"id": "warm", "seq": 0})  # tables exist before counting
    assert await db.count("Event") == 0
    seen = _counting(db)
    batch = db.batch()
    moved = batch.update_where("Ticket", {"id": "warm", "seq": 0}, {"seq": 1})
    for i in range(steps):
        batch.insert(
            "Event", {"id": f"e{i}", "ticket_id": "warm", "seq": 1, "what": "x"}, when=moved
        )
    batch.insert("Ticket", {"id": "t2", "seq": 0, "tags": ["a", "b"]})
    batch.notify("tickets", "warm", when=moved)
    await batch.run()
    # SQLite: one in-process transaction (BEGIN, each statement, the side rows, COMMIT)
    expected = {"sqlite": 5 + steps, "postgresql": 1, "mysql": 1}[db.dialect.name]
    assert len(seen) == expected, seen
    assert await db.count("Event") == steps


def _racer(url: str, worker: int, rounds: int) -> int:
    async def main() -> int:
        db = DataFlow(url)
        _models(db)
        won = 0
        try:
            for _ in range(rounds):
                while True:
                    row = await db.get("Ticket", "t")
                    assert row is not None
                    seq = row["seq"]
                    batch = db.batch()
                    moved = batch.update_where("Ticket", {"id": "t", "seq": seq}, {"seq": seq + 1})
                    batch.insert(
                        "Event",
                        {
                            "id": f"e{seq + 1}",
                            "ticket_id": "t",
                            "seq": seq + 1,
                            "what": str(worker),
                        },
                        when=moved,
                    )
                    if (await batch.run())[moved]:
                        won += 1
                        break
        finally:
            await db.close()
        return won

    return asyncio.run(main())


async def test_racing_processes_each_step_once(db: DataFlow, db_url: str) -> None:
    """Four OS processes compare-and-set one row: every seq is taken by exactly one,
    its event written by the same batch (no event without its update, no gap)."""
    _models(db)
    await db.insert("Ticket", {"id": "t", "seq": 0})
    rounds = 15
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ctx.Pool(4) as pool:
        results = await loop.run_in_executor(
            None, lambda: pool.starmap(_racer, [(db_url, w, rounds) for w in range(4)])
        )
    assert sum(results) == 4 * rounds
    assert (await db.get("Ticket", "t") or {})["seq"] == 4 * rounds
    events = await db.select("Event", order_by="seq")
    assert [e["seq"] for e in events] == list(range(1, 4 * rounds + 1))


_: Callable[..., Any] = _racer


async def test_driver_call_hooks_see_each_call_until_removed(db: DataFlow) -> None:
    _models(db)
    await db.count("Ticket")
    calls: list[DriverCall] = []
    remove = db.on_driver_call(calls.append)
    await db.insert_many("Ticket", [{"id": "a", "seq": 0}, {"id": "b", "seq": 0}])
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            assert await tx.update_where("Ticket", {"seq": 0}, {"seq": 1}) == 2
            raise RuntimeError("undo")
    assert len(await db.select("Ticket")) == 2
    batch = db.batch()
    batch.update_where("Ticket", {"id": "a"}, {"seq": 3})
    await batch.run()
    methods = [c.method for c in calls]
    assert {"begin", "executemany", "execute", "rollback", "fetch"} <= set(methods)
    assert ("script" in methods) is db.dialect.supports_batch_script
    fetched = [c for c in calls if c.method == "fetch"][-1]
    assert fetched.result == 2 and "ticket" in fetched.sql.lower()
    many = next(c for c in calls if c.method == "executemany")
    assert many.result == -1 and [row[0] for row in many.args] == ["a", "b"]
    remove()
    remove()  # twice: no error
    seen = len(calls)
    await db.get("Ticket", "a")
    assert len(calls) == seen
