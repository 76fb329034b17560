"""``kaizen demo``: the spec's two quick starts end to end, then a restart."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from dataflow import DataFlow
from kaizen.governance import (
    ApprovalStatus,
    ExternalAgentApprovalManager,
    ExternalAgentApprovalStorage,
)
from kaizen.integrations.nexus import NexusSessionManager, SessionStorage

__all__ = ["register", "run_demo"]


async def _approval_flow(db: DataFlow, out: TextIO) -> str:
    storage = ExternalAgentApprovalStorage(db)
    manager = ExternalAgentApprovalManager(storage_backend=storage)
    manager.set_approvers("copilot-001", ["lead-456"])  # the one line the spec leaves out
    request_id = await manager.request_approval(
        external_agent_id="copilot-001",
        requested_by="user-123",
        metadata={"environment": "production"},
    )
    out.write(f"  requested approval {request_id} for copilot-001 (approver: lead-456)\n")
    await manager.approve_request(request_id, "lead-456")
    out.write("  lead-456 approved it\n")
    return request_id


async def _session_flow(db: DataFlow, out: TextIO) -> str:
    manager = NexusSessionManager(storage_backend=SessionStorage(db))
    session = await manager.create_session_async(user_id="user-123")
    out.write(f"  created session {session.session_id} for user-123\n")
    await manager.update_session_state_async(session.session_id, {"key": "value"}, channel="api")
    await manager.update_session_state_async(session.session_id, {"step": 2}, channel="cli")
    out.write("  updated its state from the api and cli channels\n")
    return session.session_id


async def _reload(url: str, request_id: str, session_id: str, out: TextIO) -> dict[str, Any]:
    async with DataFlow(url) as db:
        approvals = ExternalAgentApprovalManager(storage_backend=ExternalAgentApprovalStorage(db))
        sessions = NexusSessionManager(storage_backend=SessionStorage(db))
        request = await approvals.get_request(request_id)
        session = await sessions.load_session_async(session_id)
        trail = await approvals.get_audit_trail(request_id)
        report = await approvals.verify_audit(request_id)
    if request is None or session is None:
        raise RuntimeError("the demo's data did not survive re-opening the database")
    out.write(f"  approval {request_id}: {request.status.value} by {request.approved_by}\n")
    out.write(f"  audit trail: {' -> '.join(e.event for e in trail)} (verified: {report.ok})\n")
    channels = ", ".join(sorted(session.channel_activity))
    out.write(f"  session {session_id}: state {session.state}, channels {channels}\n")
    return {
        "request_id": request_id,
        "approval_status": request.status.value,
        "audit_events": [e.event for e in trail],
        "audit_ok": report.ok,
        "session_id": session_id,
        "session_state": session.state,
        "channels": sorted(session.channel_activity),
    }


async def run_demo(url: str, out: TextIO) -> dict[str, Any]:
    """Run both quick starts on ``url``, close, re-open and show what survived.

    Returns:
        What was read back after re-opening the database.
    """
    out.write(f"Database: {DataFlow(url).url}\n\n1. Governance approval (spec quick start)\n")
    async with DataFlow(url) as db:
        request_id = await _approval_flow(db, out)
        out.write("\n2. Cross-channel session (spec quick start)\n")
        session_id = await _session_flow(db, out)
    out.write("\n3. Re-opened the database: everything survived\n")
    result = await _reload(url, request_id, session_id, out)
    if result["approval_status"] != ApprovalStatus.APPROVED.value or not result["audit_ok"]:
        raise RuntimeError("the demo's approval was not stored as approved")
    return result


async def _handle(args: argparse.Namespace) -> int:
    await run_demo(args.database_url, sys.stdout)
    return 0


def register(commands: Any) -> None:
    """Add ``demo`` to the ``kaizen`` command."""
    parser = commands.add_parser(
        "demo", help="run the spec's quick starts end to end on the database, then re-open it"
    )
    parser.set_defaults(handler=_handle)
