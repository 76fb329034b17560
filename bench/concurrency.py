"""Concurrent mixed load: 2 processes x 32 tasks, ours against the raw driver.

Each process builds the same mix of calls (loads, saves, state merges,
decisions, lists) with its own ids. For our side it puts every call's starting
state in place, waits at a barrier for the other process, then runs the calls
from 32 tasks and times each. For the raw side it first records each call's
statements (untimed, undoing it afterwards), restores the starting states, and
replays the recordings from 32 tasks over as many raw connections as our pool
holds (one for SQLite, like ours), opened before the rounds; as many of ours are
opened then too (ours connect on demand). The sides alternate in three rounds, so a
burst of load from elsewhere on the machine does not land on one side only.
Throughput is all calls over the summed windows, each from the first start to
the last finish of a round.
"""

from __future__ import annotations

import asyncio
import collections
import multiprocessing as mp
import queue
import random
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from bench.runner import Stats
from bench.targets import Target

__all__ = ["run_concurrency"]

TASKS = 32
PROCESSES = 2
POOL_SIZE = 10  # DataFlow's default pool for PostgreSQL/MySQL
ROUNDS = 3  # alternating windows of ours and raw
_TIMEOUT = 300  # seconds a worker may take before the part is reported failed
MIX = {
    "session_load": 30,
    "session_merge": 20,
    "approval_load": 15,
    "session_save": 10,
    "approval_save": 10,
    "approve": 10,
    "list_pending_for_agent": 5,
}


def _plan(proc: int, calls: int, salt: str) -> list[tuple[str, Any]]:
    rng = random.Random(proc * 1000 + len(salt))
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=calls)
    return [(kind, f"{salt}{proc}-{i}") for i, kind in enumerate(kinds)]


class _Load:
    """The calls of the mix, with their untimed setup and teardown."""

    def __init__(self, target: Target, fixture_rows: int) -> None:
        from bench.suite_approvals import ApprovalSuite, new_request
        from bench.suite_sessions import SessionSuite, new_session
        from dataflow import DataFlow

        self.db = DataFlow(target.url)
        self.approvals = ApprovalSuite(self.db, target)
        self.sessions = SessionSuite(self.db, target)
        self.new_request, self.new_session = new_request, new_session
        self.rows = max(1, fixture_rows)
        a, s = self.approvals, self.sessions
        # (key, fixture row) -> the call; reads pick a fixture row from the key.
        self.steps: dict[str, Callable[[str, int], Awaitable[Any]]] = {
            "session_load": lambda k, n: s.storage.load(f"sess-{n:08d}"),
            "session_merge": lambda k, n: s.manager.update_session_state_async(k, {"n": 1}, "api"),
            "approval_load": lambda k, n: a.storage.load(f"req-{n:08d}"),
            "session_save": lambda k, n: s.storage.save(new_session(k)),
            "approval_save": lambda k, n: a.storage.save(new_request(k)),
            "approve": lambda k, n: a.manager.approve_request(k, "lead-bench"),
            "list_pending_for_agent": lambda k, n: a.storage.list_pending_for_agent("agent-hot"),
        }

    async def run(self, kind: str, key: str) -> None:
        await self.steps[kind](key, zlib.crc32(key.encode()) % self.rows)

    async def setup(self, kind: str, key: str) -> None:
        if kind == "session_merge":
            # Stored, and cached by this manager (the merge then takes one statement).
            await self.sessions.storage.save(self.new_session(key))
            await self.sessions.manager.load_session_async(key)
        elif kind == "approve":
            await self.approvals.storage.save(self.new_request(key))

    async def teardown(self, kind: str, key: str) -> None:
        if kind in ("approval_save", "approve"):
            await self.approvals._forget([key])
        elif kind in ("session_save", "session_merge"):
            await self.db.delete("CrossChannelSessionRecord", key)


class _FifoPool:
    """Raw connections handed to waiters in arrival order, like our pool.

    ``asyncio.Queue`` would let the releasing task take the connection straight
    back, serializing the load on one task and hiding the queueing latency.
    """

    def __init__(self, items: list[Any]) -> None:
        self.idle = list(items)
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    async def get(self) -> Any:
        if self.idle:
            return self.idle.pop()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, item: Any) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self.idle.append(item)


async def _window(
    barrier: Any, items: list[Any], run: Callable[[Any], Awaitable[Any]]
) -> dict[str, Any]:
    queue = list(reversed(items))
    lat: list[int] = []
    errors = [0]

    async def worker() -> None:
        while queue:
            item = queue.pop()
            t0 = time.perf_counter_ns()
            try:
                await run(item)
            except Exception:
                errors[0] += 1
            lat.append(time.perf_counter_ns() - t0)

    barrier.wait()
    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(TASKS)))
    end = time.monotonic()
    return {"start": start, "end": end, "lat": lat, "errors": errors[0]}


async def _ours_round(load: _Load, barrier: Any, plan: list[tuple[str, str]]) -> dict[str, Any]:
    for kind, key in plan:
        await load.setup(kind, key)

    async def ours(item: tuple[str, str]) -> None:
        await load.run(*item)

    window = await _window(barrier, plan, ours)
    for kind, key in plan:
        await load.teardown(kind, key)
    return window


async def _raw_round(
    load: _Load, barrier: Any, plan: list[tuple[str, str]], pool: _FifoPool
) -> dict[str, Any]:
    from bench.capture import Recorder

    recorded = []
    async with Recorder(load.db) as rec:
        for kind, key in plan:
            await load.setup(kind, key)
            rec.take()
            await load.run(kind, key)
            recorded.append(rec.take())
            await load.teardown(kind, key)
    for kind, key in plan:
        await load.setup(kind, key)
    mismatches = [0]

    async def raw(stmts: Any) -> None:
        r = await pool.get()
        try:
            counts = await r.replay(stmts)
        except BaseException:
            await r.recover()  # never hand on a connection inside a transaction
            raise
        finally:
            pool.put(r)
        if counts != [s.result for s in stmts]:
            mismatches[0] += 1

    window = await _window(barrier, recorded, raw)
    window["mismatches"] = mismatches[0]
    for kind, key in plan:
        await load.teardown(kind, key)
    return window


async def _child_main(
    target: Target, proc: int, calls: int, fixture_rows: int, barrier: Any
) -> dict[str, Any]:
    from bench.targets import open_replayer

    load = _Load(target, fixture_rows)
    await load.db.initialize()
    size = 1 if target.family == "sqlite" else POOL_SIZE
    pool = _FifoPool([await open_replayer(target, target.raw_drivers[0]) for _ in range(size)])
    # The raw connections are open before any timing; ours open on demand. Open as
    # many of ours now, untimed, so that no window pays for connecting.
    await asyncio.gather(*(load.db.ping() for _ in range(size)))
    per_round = max(1, calls // ROUNDS)
    result: dict[str, list[dict[str, Any]]] = {"ours": [], "raw": []}
    # Alternate the sides so a burst of load from elsewhere does not land on one.
    for rnd in range(ROUNDS):
        result["ours"].append(await _ours_round(load, barrier, _plan(proc, per_round, f"o{rnd}-")))
        result["raw"].append(
            await _raw_round(load, barrier, _plan(proc, per_round, f"r{rnd}-"), pool)
        )
    for r in pool.idle:
        await r.close()
    await load.db.close()
    return result


def _child(
    target: Target, proc: int, calls: int, fixture_rows: int, barrier: Any, out: Any
) -> None:
    try:
        out.put(asyncio.run(_child_main(target, proc, calls, fixture_rows, barrier)))
    except BaseException as exc:
        barrier.abort()
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _summary(procs: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Both processes' windows, round by round: all calls over the summed windows."""
    lat = [x for windows in procs for w in windows for x in w["lat"]]
    seconds = 0.0
    for same_round in zip(*procs, strict=True):
        seconds += max(w["end"] for w in same_round) - min(w["start"] for w in same_round)
    stats = Stats.of(lat)
    return {
        "calls": len(lat),
        "seconds": round(seconds, 3),
        "throughput_per_s": round(len(lat) / seconds, 1) if seconds > 0 else None,
        "p50_ms": stats.p50,
        "p95_ms": stats.p95,
        "errors": sum(w["errors"] for windows in procs for w in windows),
    }


def run_concurrency(target: Target, calls: int, fixture_rows: int) -> dict[str, Any]:
    """Run the mixed load in two processes; return throughput and latency per side."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES, timeout=_TIMEOUT)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(target, p, calls, fixture_rows, barrier, out))
        for p in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        parts = [out.get(timeout=_TIMEOUT) for _ in procs]
    except queue.Empty:
        return {"error": f"no result within {_TIMEOUT} s (a worker hung or died)"}
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [p["error"] for p in parts if "error" in p]
    if errors:
        return {"error": "; ".join(errors)}
    ours = _summary([p["ours"] for p in parts])
    raw = _summary([p["raw"] for p in parts])
    profiles = {"profiles": [p["profile"] for p in parts]} if "profile" in parts[0] else {}
    return {
        **profiles,  # bench.profile --concurrency
        "processes": PROCESSES,
        "tasks_per_process": TASKS,
        "mix": MIX,
        "ours": ours,
        "rounds": ROUNDS,
        "raw": {"driver": target.raw_drivers[0], **raw},
        "replay_mismatches": sum(w["mismatches"] for p in parts for w in p["raw"]),
        "throughput_ratio": (
            ours["throughput_per_s"] / raw["throughput_per_s"]
            if ours["throughput_per_s"] and raw["throughput_per_s"]
            else None
        ),
    }
