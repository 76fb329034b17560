"""An app instance for the cluster tests, in a process of its own.

``python cluster_worker.py COMMAND JSON_ARGS``; prints ``ready`` and waits for a
``go`` line where instances must start together; prints its result as the last
line of stdout (JSON). Commands:

* ``first-use``: first use of each of ``urls`` at once (both stores).
* ``merge``: ``count`` state merges of distinct keys into session ``session``.
* ``race``: decide every request of ``ids`` as ``approver``; report which it won.
* ``load``: approval requests and session merges through ``url`` until the file
  ``stop`` exists, one JSON line per call in ``log`` (acknowledged ids and keys).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from dataflow import DataFlow, DataFlowError
from kaizen.governance import (
    AlreadyDecidedError,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
)
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage


def barrier() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def approvals(db: DataFlow, approvers: list[str]) -> ExternalAgentApprovalManager:
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    manager.set_approvers("agent", approvers)
    return manager


async def first_use(args: dict[str, Any]) -> Any:
    barrier()

    async def use(url: str) -> str | None:
        db = DataFlow(url)
        try:
            await approvals(db, ["lead"]).request_approval("agent", "user", {"n": 1})
            await NexusSessionManager(storage_backend=SessionStorage(db)).create_session_async(
                user_id="user"
            )
            return None
        except DataFlowError as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            await db.close()

    return await asyncio.gather(*(use(u) for u in args["urls"]))


async def merge(args: dict[str, Any]) -> Any:
    db = DataFlow(args["url"])
    try:
        manager = NexusSessionManager(storage_backend=SessionStorage(db))
        assert await manager.load_session_async(args["session"]) is not None
        barrier()
        errors, done = [], 0
        for i in range(args["count"]):
            try:
                key = {f"{args['name']}-{i}": i}
                done += await manager.update_session_state_async(args["session"], key, "api")
            except DataFlowError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        return {"done": done, "errors": errors}
    finally:
        await db.close()


async def race(args: dict[str, Any]) -> Any:
    db = DataFlow(args["url"])
    try:
        manager = approvals(db, args["approvers"])
        barrier()
        won, lost = [], {}
        for request_id in args["ids"]:
            try:
                await manager.approve_request(request_id, args["approver"])
                won.append(request_id)
            except AlreadyDecidedError as exc:
                lost[request_id] = exc.status.value
        return {"won": won, "lost": lost}
    finally:
        await db.close()


async def load(args: dict[str, Any]) -> Any:
    db = DataFlow(args["url"])
    stop, name = Path(args["stop"]), args["name"]
    # A test worker's small local log: blocking file calls are fine here.
    log = Path(args["log"]).open("a", buffering=1)  # noqa: ASYNC230, SIM115
    try:
        manager = approvals(db, ["lead"])
        sessions = NexusSessionManager(storage_backend=SessionStorage(db))
        await sessions.load_session_async(args["session"])
        i = 0
        while not stop.exists():  # noqa: ASYNC240
            i += 1
            t0 = time.monotonic()
            entry: dict[str, Any] = {"t0": t0, "ok": True, "error": None}
            try:
                if i % 2:
                    entry["request"] = await manager.request_approval("agent", name, {"i": i})
                else:
                    key = f"{name}-{i}"
                    if await sessions.update_session_state_async(args["session"], {key: i}):
                        entry["key"] = key
            except Exception as exc:
                entry.update(ok=False, ours=isinstance(exc, DataFlowError), error=repr(exc))
                await asyncio.sleep(0.05)
            entry["dt"] = time.monotonic() - t0
            log.write(json.dumps(entry) + "\n")
        return i
    finally:
        log.close()
        await db.close()


COMMANDS = {"first-use": first_use, "merge": merge, "race": race, "load": load}


if __name__ == "__main__":
    result = asyncio.run(COMMANDS[sys.argv[1]](json.loads(sys.argv[2])))
    print(json.dumps({"result": result}), flush=True)
