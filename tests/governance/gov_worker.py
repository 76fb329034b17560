"""Another app instance for the multi-process governance tests.

Run as ``python gov_worker.py DATABASE_URL COMMAND JSON_ARGS``. The process opens
its own DataFlow, storage and manager; commands that race print ``ready`` and
wait for a ``go`` line on stdin so that all instances start together. The
result is printed as one JSON line, last on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from dataflow import DataFlow
from kaizen.governance import (
    AlreadyDecidedError,
    ApprovalLevel,
    ApprovalRequirement,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    approval_manager,
)

AGENT = "agent-x"


def make_manager(
    db: DataFlow, approvers: list[str], timeout: float = 3600
) -> ExternalAgentApprovalManager:
    """A manager whose agent ``AGENT`` needs approval by ``approvers``."""
    manager = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM, custom_approvers=approvers, approval_timeout_seconds=timeout
    )
    manager.add_requirement(AGENT, requirement)
    return manager


def barrier() -> None:
    """Tell the parent we are ready; wait for its ``go``."""
    print("ready", flush=True)
    sys.stdin.readline()


async def create(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    return [
        await manager.request_approval(AGENT, args.get("requested_by", "user-1"), {"n": i})
        for i in range(args["count"])
    ]


async def approve(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    await manager.approve_request(args["id"], args["approver"])
    return "approved"


async def wait(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    # A long recheck interval: on PostgreSQL only the NOTIFY can wake the waiter in time.
    approval_manager._RECHECK_SECONDS = args.get("recheck", 5.0)
    print("waiting", flush=True)
    return await manager.wait_for_approval(args["id"], timeout=args["timeout"])


async def race(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    """Try to decide every request; report which ones this instance won."""
    won: dict[str, str] = {}
    lost: dict[str, str] = {}
    me = args["approver"]
    barrier()
    for request_id in args["ids"]:
        try:
            if args["action"] == "approve":
                await manager.approve_request(request_id, me)
            else:
                await manager.reject_request(request_id, me, f"no from {me}")
            won[request_id] = args["action"]
        except AlreadyDecidedError as exc:
            lost[request_id] = exc.status.value
    return {"won": won, "lost": lost}


async def sweep(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    barrier()
    return await manager.timeout_pending_approvals()


COMMANDS = {"create": create, "approve": approve, "wait": wait, "race": race, "sweep": sweep}


async def main(url: str, command: str, args: dict[str, Any]) -> None:
    db = DataFlow(url)
    try:
        manager = make_manager(db, args.get("approvers", ["lead"]))
        result = await COMMANDS[command](manager, args)
    finally:
        await db.close()
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
