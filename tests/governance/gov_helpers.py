"""Helpers of the governance tests: requirements, and other app instances as OS processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import workers
from dataflow.values import utcnow
from kaizen.governance import (
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStore,
    ExternalAgentApprovalManager,
    policy,
)

WORKER = Path(__file__).with_name("gov_worker.py")


def custom(*approvers: str, timeout: float = 3600) -> ApprovalRequirement:
    """A CUSTOM requirement with these approvers."""
    return ApprovalRequirement(
        ApprovalLevel.CUSTOM, custom_approvers=list(approvers), approval_timeout_seconds=timeout
    )


class Worker(workers.Worker):
    """Another app instance: a Python process running ``gov_worker.py``."""

    @classmethod
    async def start(cls, url: str, command: str, **args: Any) -> workers.Worker:
        return await cls.spawn(WORKER, url, command, json.dumps(args))


async def run_worker(url: str, command: str, **args: Any) -> Any:
    """Run one worker command to completion and return its result."""
    return await (await Worker.start(url, command, **args)).result()


async def vote(
    store: ApprovalStore, request_id: str, actor: str, decision: str = "approve", **kw: Any
) -> bool:
    """Cast one vote through the policy and the store's compare-and-set (no manager)."""
    request = await store.load(request_id)
    assert request is not None
    return await store.append(policy.cast(request, actor, decision, now=utcnow(), **kw))


async def expire(store: ApprovalStore, request_id: str) -> bool:
    """Apply what the deadline of one overdue request does (escalate or time out)."""
    request = await store.load(request_id)
    assert request is not None
    return await store.append(policy.on_deadline(request, utcnow()))


async def sweep(store: ApprovalStore) -> int:
    """Time out (or escalate) every overdue request as a manager on ``store`` does."""
    manager = ExternalAgentApprovalManager(storage_backend=store)
    return await manager.timeout_pending_approvals()
