"""Cross-process wake-up latency of ``wait_for_approval``.

A child process waits on a request; after a random pause (100 ms to 1 s, so
polling waiters are caught at every point of their backoff) this process
approves it. The latency is from ``approve_request`` returning here to
``wait_for_approval`` returning there, on the machine's monotonic clock, which
both processes share. PostgreSQL wakes waiters by NOTIFY; SQLite and MySQL poll.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import time
from typing import Any

from bench.runner import Stats
from bench.suite_approvals import new_request
from bench.targets import Target
from dataflow import DataFlow

__all__ = ["run_wakeup"]

_TIMEOUT = 30.0


async def _waiter_main(target: Target, inbox: Any, outbox: Any) -> None:
    from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage

    async with DataFlow(target.url) as db:
        manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
        await db.initialize()
        while (rid := await asyncio.to_thread(inbox.get)) is not None:
            outbox.put(("ready", rid))
            approved = await manager.wait_for_approval(rid, timeout=_TIMEOUT)
            outbox.put(("woke", time.monotonic(), approved))


def _waiter(target: Target, inbox: Any, outbox: Any) -> None:
    try:
        asyncio.run(_waiter_main(target, inbox, outbox))
    except BaseException as exc:
        outbox.put(("error", f"{type(exc).__name__}: {exc}"))


async def _get(q: Any) -> Any:
    msg = await asyncio.to_thread(q.get, True, _TIMEOUT + 10)
    if msg[0] == "error":
        raise RuntimeError(msg[1])
    return msg


async def run_wakeup(db: DataFlow, target: Target, rounds: int) -> dict[str, Any]:
    """Measure ``rounds`` wake-ups of a waiter in another process."""
    from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage

    storage = ExternalAgentApprovalStorage(db)
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    ctx = mp.get_context("spawn")
    inbox, outbox = ctx.Queue(), ctx.Queue()
    proc = ctx.Process(target=_waiter, args=(target, inbox, outbox))
    proc.start()
    rng = random.Random(5)
    after: list[int] = []
    total: list[int] = []
    wrong = 0
    try:
        for r in range(rounds):
            rid = f"wake-{r}"
            await storage.save(new_request(rid))
            inbox.put(rid)
            await _get(outbox)  # "ready": the waiter is about to wait
            await asyncio.sleep(rng.uniform(0.1, 1.0))
            t0 = time.monotonic()
            await manager.approve_request(rid, "lead-bench")
            t1 = time.monotonic()
            _, woke, approved = await _get(outbox)
            wrong += not approved
            after.append(int((woke - t1) * 1e9))
            total.append(int((woke - t0) * 1e9))
    finally:
        inbox.put(None)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    mechanism = (
        "LISTEN/NOTIFY" if db.dialect.supports_notify else "polling, backoff 50 ms doubling to 1 s"
    )
    return {
        "rounds": rounds,
        "mechanism": mechanism,
        "after_decision": Stats.of(after).as_dict(),
        "including_decision": Stats.of(total).as_dict(),
        "not_approved": wrong,
    }
