"""Waiting for a human inside a tool call: progress while pending, the decision at the end.

The wait is the manager's own (woken by the decision's NOTIFY on PostgreSQL,
polling with backoff elsewhere), cut into slices so the caller hears progress
between them. A cancelled call (the client gave up) stops waiting and changes
nothing: the request stays pending for the approvers, and its id was in every
progress message.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp.server.mcpserver import Context

from kaizen import service
from kaizen.access import Viewer

__all__ = ["MAX_WAIT_SECONDS", "PROGRESS_SECONDS", "decision", "wait_for_decision"]

logger = logging.getLogger("kaizen.mcp")

#: The longest a tool call may wait for a decision.
MAX_WAIT_SECONDS = 3600.0
#: Seconds between progress notifications while pending.
PROGRESS_SECONDS = 2.0


def decision(approval: dict[str, Any]) -> dict[str, Any]:
    """What ``request_approval`` answers: the request's id, status and the decision."""
    return {
        "request_id": approval["id"],
        "status": approval["status"],
        "progress": approval["progress"]["text"],
        "approvers": approval["approvers"],
        "deadline_at": approval["deadline_at"],
        "decided_by": approval["approved_by"],
        "decided_at": approval["approved_at"],
        "approved_metadata": approval["approved_metadata"],
        "rejection_reason": approval["rejection_reason"],
    }


async def wait_for_decision(
    k: service.Kaizen, request_id: str, seconds: float, ctx: Context, viewer: Viewer
) -> dict[str, Any]:
    """Wait up to ``seconds`` for ``request_id`` to be decided, reporting progress to
    the caller; return the request as it is then (still pending if nobody decided)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while True:
        approval = await service.get_approval(k, request_id, viewer)
        left = end - loop.time()
        if approval["status"] != "pending" or left <= 0:
            return approval
        await ctx.report_progress(
            seconds - left,
            seconds,
            f"approval request {request_id} pending: {approval['progress']['text']} "
            f"approvals, waiting for {', '.join(approval['approvers'])}",
        )
        try:
            await k.approvals.wait_for_approval(request_id, timeout=min(left, PROGRESS_SECONDS))
        except asyncio.CancelledError:
            logger.info(
                "stopped waiting for approval request %s: the call was cancelled", request_id
            )
            raise
