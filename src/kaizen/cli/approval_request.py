"""``kaizen approvals request``: create a pending request from the command line.

Without ``--approver`` the request is routed by the agent's stored policy (``kaizen
policies set``); with it, the approvers given decide this request only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from dataflow.errors import ValidationError
from kaizen import service
from kaizen.cli._output import emit
from kaizen.cli.approvals import parse_metadata
from kaizen.cli.policies import id_list

__all__ = ["register", "request_line"]


def _approvers(values: list[str] | None) -> list[str] | None:
    """The ids of every ``--approver`` (each may also be comma-separated), in order."""
    if values is None:
        return None
    ids = [i for value in values for i in id_list("--approver", value)]
    return list(dict.fromkeys(ids))


def request_line(approval: Mapping[str, Any]) -> str:
    """One line on a new request: its id, who may decide it and by when."""
    approvers = ", ".join(approval["approvers"])
    progress = approval["progress"]
    return (
        f"requested approval {approval['id']} for {approval['external_agent_id']} by "
        f"{approval['requested_by']}: pending, needs {progress['quorum']} approval(s) of "
        f"{approvers}; deadline {approval['deadline_at'].isoformat()}"
    )


async def _request(args: argparse.Namespace) -> int:
    metadata = parse_metadata(args.metadata)  # bad input fails before the database opens
    approvers = _approvers(args.approvers)
    if approvers is None and (args.quorum is not None or args.timeout is not None):
        raise ValidationError(
            "--quorum and --timeout go with --approver: without it the agent's stored "
            "policy sets both"
        )
    # Routing by a stored policy reads a database that must exist; approvers given
    # make this the first write, which may create it (as ``policies set`` does).
    async with service.Kaizen.open(args.database_url, create=approvers is not None) as k:
        approval = await service.request_approval(
            k,
            args.agent,
            args.by,
            approvers=approvers,
            quorum=args.quorum,
            metadata=metadata,
            timeout_seconds=args.timeout,
        )
    emit(sys.stdout, approval if args.json else request_line(approval), as_json=args.json)
    return 0


def register(sub: Any) -> None:
    """Add ``request`` to the ``approvals`` subcommands."""
    p = sub.add_parser(
        "request",
        help="create a pending approval request (routed by the agent's stored policy)",
        description=(
            "Create a pending approval request. Without --approver it is routed by the "
            "agent's stored policy (kaizen policies set AGENT --approvers ...); with "
            "--approver the given approvers decide this request only."
        ),
    )
    p.add_argument("--agent", required=True, metavar="AGENT", help="the external agent id")
    p.add_argument("--by", required=True, metavar="USER", help="who requests the approval")
    p.add_argument(
        "--approver",
        action="append",
        dest="approvers",
        metavar="USER",
        help="who may vote on this request (repeatable, or comma-separated); "
        "default: the agent's stored policy",
    )
    p.add_argument(
        "--quorum", type=int, metavar="N", help="approvals needed, with --approver (default: 1)"
    )
    p.add_argument("--metadata", metavar="JSON", help="what approvers see (a JSON object)")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long it stays decidable, with --approver (default: 3600)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_request)
