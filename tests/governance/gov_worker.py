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

from dataflow import DataFlow, DataFlowError
from kaizen.governance import (
    AlreadyDecidedError,
    ApprovalLevel,
    ApprovalRequirement,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
    _deadlines,
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
    _deadlines._RECHECK_SECONDS = args.get("recheck", 5.0)
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


async def vote_outcome(
    manager: ExternalAgentApprovalManager, request_id: str, voter: str, action: str
) -> list[str]:
    """Cast one vote; ``[outcome, status]``: ``voted`` and the status after the vote, or
    the error's class name and the status it names (``-`` for errors naming none)."""
    try:
        if action == "approve":
            after = await manager.approve_request(request_id, voter)
        else:
            after = await manager.reject_request(request_id, voter, f"no from {voter}")
    except AlreadyDecidedError as exc:  # AlreadyVotedError included
        return [type(exc).__name__, exc.status.value]
    except DataFlowError as exc:  # NotAuthorizedError, ConcurrencyError...: the test says
        return [type(exc).__name__, "-"]
    return ["voted", after.status.value]


async def vote_race(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    """Vote ``action`` as ``approver`` on every request of ``ids``, all instances at once;
    each request's outcome (see :func:`vote_outcome`)."""
    barrier()
    return {
        rid: await vote_outcome(manager, rid, args["approver"], args["action"])
        for rid in args["ids"]
    }


async def sweep_overdue(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    """Escalate or time out the overdue requests, all instances at once; the ids acted on."""
    barrier()
    done = await manager.sweep_overdue()
    return {"escalated": done.escalated, "timed_out": done.timed_out}


async def steps(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    """A long-lived instance: per stdin line ``{"id", "voter", "action"}`` cast the vote
    and print ``{"step": [outcome, status, on_behalf_of]}``; an empty line ends it."""
    print("ready", flush=True)
    done = 0
    while line := sys.stdin.readline().strip():
        step = json.loads(line)
        outcome = await vote_outcome(manager, step["id"], step["voter"], step["action"])
        request = await manager.get_request(step["id"])
        mine = [v for v in request.votes if v.approver_id == step["voter"]] if request else []
        behalf = mine[0].on_behalf_of if mine else None
        print(json.dumps({"step": [*outcome, behalf]}), flush=True)
        done += 1
    return done


async def claim(manager: ExternalAgentApprovalManager, args: dict[str, Any]) -> Any:
    """Claim every approval of ``ids`` as ``claimant``, all instances at once; the ids won."""
    barrier()
    return [i for i in args["ids"] if await manager.claim_approval(i, args["claimant"])]


COMMANDS = {
    "claim": claim,
    "create": create,
    "approve": approve,
    "wait": wait,
    "race": race,
    "sweep": sweep,
    "vote_race": vote_race,
    "sweep_overdue": sweep_overdue,
    "steps": steps,
}


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
