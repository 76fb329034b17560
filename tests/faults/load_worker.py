"""A load process for the fault tests: writes and reads through one DataFlow until told
to stop, recording every call.

Usage: ``python load_worker.py URL OUT_DIR NAME``. It creates ``OUT_DIR/NAME.jsonl``
with one line per call: ``{"t0", "dt", "op", "ok", "error", "ours", "ids"}`` where
``t0`` is ``time.monotonic()`` (comparable across processes), ``ids`` the ids an
acknowledged write stored, ``ours`` whether a failure was an error of our tree.
It stops when ``OUT_DIR/stop`` exists. Each line is flushed before the next call,
so a killed worker leaves every acknowledgement it made.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from dataflow import DataFlow, DataFlowError


async def main(url: str, out: Path, name: str) -> None:
    db = DataFlow(url)

    @db.model(table="fault_row")
    class FaultRow:
        id: str
        worker: str
        n: int

    log = (out / f"{name}.jsonl").open("a", buffering=1)
    stop = out / "stop"
    i = 0
    while not stop.exists():
        i += 1
        ids: list[str] = []
        t0 = time.monotonic()
        op = ("insert", "transaction", "count")[i % 3]
        try:
            if op == "insert":
                await db.insert(FaultRow, {"id": f"{name}-{i}", "worker": name, "n": i})
                ids = [f"{name}-{i}"]
            elif op == "transaction":
                async with db.transaction() as tx:
                    for part in ("a", "b"):
                        await tx.insert(
                            FaultRow, {"id": f"{name}-{i}{part}", "worker": name, "n": i}
                        )
                ids = [f"{name}-{i}a", f"{name}-{i}b"]
            else:
                await db.count(FaultRow, {"worker": name})
            error, ours = None, True
        except Exception as exc:
            error = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
            ours = isinstance(exc, DataFlowError)
            ids = []
            await asyncio.sleep(0.05)  # an outage: do not spin
        dt = time.monotonic() - t0
        line = {"t0": t0, "dt": dt, "op": op, "ok": error is None, "error": error, "ours": ours}
        log.write(json.dumps({**line, "ids": ids}) + "\n")
    await db.close()
    log.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3]))
