"""Telling approvers about a new request: the control protocol and its payload."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from kaizen.governance.models import ExternalAgentApprovalRequest

__all__ = ["ControlProtocol", "approval_payload", "notify_approvers"]

logger = logging.getLogger("kaizen.governance")


@runtime_checkable
class ControlProtocol(Protocol):
    """What the manager needs to reach approvers (chat, e-mail, a web inbox...).

    Implement one coroutine; it is called once per approver. Raising is allowed:
    the failure is logged and the request stays stored and decidable.
    """

    async def send_approval_request(self, approver_id: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` (see :func:`approval_payload`) to ``approver_id``."""


def approval_payload(request: ExternalAgentApprovalRequest, base_url: str = "") -> dict[str, Any]:
    """The notification sent to each approver of ``request``.

    Args:
        request: The stored request.
        base_url: Prefix of the approve/reject URLs (e.g. ``https://kaizen.example.com``).

    Returns:
        ``request_id``, ``external_agent_id``, ``requested_by``, ``approval_reason``,
        ``metadata``, ``approvers``, ``created_at`` and ``deadline_at`` (ISO 8601),
        ``quorum`` (approvals needed), ``escalated`` (whether it reached you by
        escalation),
        ``url`` (the approver inbox opened at the request), ``approve_url`` and
        ``reject_url``: links for a browser, which open that page with the
        decision pre-selected; nothing changes until the approver signs in and
        confirms (the HTTP API takes decisions by authenticated POST only).
    """
    page = f"{base_url.rstrip('/')}/approvals/{quote(request.id, safe='')}"
    return {
        "request_id": request.id,
        "external_agent_id": request.external_agent_id,
        "requested_by": request.requested_by,
        "approval_reason": request.approval_reason,
        "metadata": dict(request.request_metadata),
        "approvers": list(request.approvers),
        "created_at": request.created_at.isoformat(),
        "deadline_at": request.deadline_at.isoformat() if request.deadline_at else None,
        "quorum": request.quorum,
        "escalated": request.escalations > 0,
        "url": page,
        "approve_url": f"{page}?action=approve",
        "reject_url": f"{page}?action=reject",
    }


#: Seconds one approver's notification may take before it counts as failed.
NOTIFY_TIMEOUT = 10.0


async def notify_approvers(
    protocol: ControlProtocol,
    request: ExternalAgentApprovalRequest,
    base_url: str = "",
    *,
    send_timeout: float = NOTIFY_TIMEOUT,
    recipients: list[str] | None = None,
) -> int:
    """Send the payload to every approver (or ``recipients``) at once; return how
    many sends succeeded.

    A failing or hanging send (past ``send_timeout`` seconds) is logged and skipped:
    the request is already stored, and one slow channel does not delay the others.
    """
    payload = approval_payload(request, base_url)

    async def send(approver_id: str) -> bool:
        try:
            await asyncio.wait_for(
                protocol.send_approval_request(approver_id, dict(payload)), send_timeout
            )
        except Exception:
            logger.exception(
                "could not notify approver %r of approval request %r", approver_id, request.id
            )
            return False
        return True

    targets = request.approvers if recipients is None else recipients
    results = await asyncio.gather(*(send(a) for a in targets))
    return sum(results)
