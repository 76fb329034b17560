"""``kaizen demo``: the spec's two quick starts end to end, then a restart; a ``dataflow``
model and query; one request left pending, with a token for its approver and the commands
to serve the inbox and decide it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from dataflow import DataFlow, Index
from dataflow.errors import ConfigurationError
from kaizen import service
from kaizen.cli._demo_next import (
    TOKEN_DAYS,
    NextSteps,
    demo_port,
    serve_port,
    tokens_path,
    write_token,
)
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


#: The pending request the demo leaves: routed by a stored policy to this approver.
AGENT, REQUESTER, APPROVER = "copilot-001", "user-123", "lead-456"
_TASK_FILTER: dict[str, Any] = {"status": "open", "priority": {"$gte": 2}}


async def _dataflow_flow(db: DataFlow, out: TextIO) -> list[dict[str, Any]]:
    """A model of one's own on the same database, a few rows and a filtered query."""

    @db.model(indexes=[Index("status", "priority")])
    class DemoTask:
        id: str
        title: str
        status: str = "open"
        priority: int = 1

    await db.upsert_many(
        DemoTask,
        [
            {"id": "task-1", "title": "Write the release notes", "priority": 2},
            {"id": "task-2", "title": "Rotate the API tokens", "status": "done", "priority": 3},
            {"id": "task-3", "title": "Ship version 2", "priority": 3},
            {"id": "task-4", "title": "Tidy the wiki"},
        ],
    )
    rows = await db.select(DemoTask, _TASK_FILTER, order_by="-priority")
    out.write(
        "  @db.model class DemoTask: id: str, title: str, status: str = 'open', "
        "priority: int = 1\n"
        "  stored 4 tasks (table demo_task), then\n"
        f"  db.select(DemoTask, {json.dumps(_TASK_FILTER)}, order_by='-priority'):\n"
    )
    for row in rows:
        out.write(f"    {row['id']}  priority {row['priority']}  {row['title']}\n")
    return rows


async def _pending_flow(k: service.Kaizen, out: TextIO) -> dict[str, Any]:
    """Store a policy for the agent, then a request it routes: left pending."""
    await service.set_policy(k, AGENT, approvers=[APPROVER], actor="kaizen demo")
    out.write(f"  stored policy: {AGENT}'s requests go to {APPROVER}, in every instance\n")
    request = await service.request_approval(
        k, AGENT, REQUESTER, metadata={"environment": "production", "action": "deploy v2"}
    )
    out.write(f"  {REQUESTER} requested approval {request['id']} for {AGENT}: pending\n")
    return request


async def run_demo(
    url: str,
    out: TextIO,
    *,
    port: int | None = None,
    tokens: str | None = None,
    db_flag: str | None = None,
) -> dict[str, Any]:
    """Run both quick starts on ``url``, close, re-open and show what survived; show a
    ``dataflow`` model and query; leave one request pending for ``lead-456``, write a
    new token for them and print how to serve the inbox and decide it.

    Args:
        url: The database.
        out: Where to print.
        port: The port of the printed ``kaizen serve`` (default: 8000, or a free
            one when 8000 is taken).
        tokens: The token file to add the approver's token to (default:
            ``kaizen-tokens.json`` next to the SQLite database, else here).
        db_flag: The ``--db`` given (None: the URL came from the environment).

    Returns:
        What was read back after re-opening the database, the tasks the query
        found, the pending request, the token and the commands printed.
    """
    file = tokens_path(url, tokens)
    if not file.parent.is_dir():  # found out before anything is written
        raise ConfigurationError(f"no folder {str(file.parent)!r} for the token file {file}")
    out.write(f"Database: {DataFlow(url).url}\n\n1. Governance approval (spec quick start)\n")
    async with DataFlow(url) as db:
        request_id = await _approval_flow(db, out)
        out.write("\n2. Cross-channel session (spec quick start)\n")
        session_id = await _session_flow(db, out)
    out.write("\n3. Re-opened the database: everything survived\n")
    result = await _reload(url, request_id, session_id, out)
    if result["approval_status"] != ApprovalStatus.APPROVED.value or not result["audit_ok"]:
        raise RuntimeError("the demo's approval was not stored as approved")
    async with service.Kaizen.open(url) as k:
        out.write("\n4. DataFlow: a model of your own and a query\n")
        result["tasks"] = await _dataflow_flow(k.db, out)
        out.write(f"\n5. A request waiting for {APPROVER}\n")
        pending = await _pending_flow(k, out)
    token = write_token(file, APPROVER)
    out.write(
        f"  new token for {APPROVER} added to {file} (it keeps only its hash; "
        f"valid for {TOKEN_DAYS} days)\n"
    )
    steps = NextSteps(url, db_flag, serve_port(port), file)
    commands = steps.write(out, pending, APPROVER, token)
    return {**result, "pending_id": pending["id"], "token": token, "commands": commands}


async def _handle(args: argparse.Namespace) -> int:
    await run_demo(
        args.database_url,
        sys.stdout,
        port=args.port,
        tokens=args.tokens,
        db_flag=getattr(args, "db", None),
    )
    return 0


def register(commands: Any) -> None:
    """Add ``demo`` to the ``kaizen`` command."""
    parser = commands.add_parser(
        "demo",
        help="run the quick starts end to end, then leave a request pending to decide",
        description=(
            "Run the spec's quick starts end to end on the database, re-open it, show a "
            "dataflow model and query, and leave one request pending for lead-456, with "
            "a new token for them and the kaizen serve command to decide it in the inbox."
        ),
    )
    parser.add_argument(
        "--port",
        type=demo_port,
        help="port of the printed kaizen serve command (default: 8000, else a free one)",
    )
    parser.add_argument(
        "--tokens",
        metavar="FILE",
        help="token file for the approver's new token (default: kaizen-tokens.json next "
        "to the SQLite database, else in this directory)",
    )
    parser.set_defaults(handler=_handle)
