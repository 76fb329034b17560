"""Who may see what: the read rules of approvals and sessions, in one place.

A :class:`Viewer` is the authenticated user on whose behalf a surface (the
HTTP API, the inbox, the CLI given ``--as``) reads. An admin sees everything;
anyone else sees the approval requests routed to them or made by them (or
routed to someone they stand in for as a delegate), and only their own
sessions. Surfaces answer a request the viewer may not see as
if it did not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kaizen.governance.models import AuditEvent, ExternalAgentApprovalRequest
from kaizen.integrations.nexus.models import CrossChannelSession

__all__ = ["Viewer", "involving", "may_see_request", "may_see_session", "may_see_trail"]


@dataclass(frozen=True, slots=True)
class Viewer:
    """The user a read is made for.

    Args:
        user: The user id.
        admin: Whether the user may read everything.
    """

    user: str
    admin: bool = False


def involving(viewer: Viewer | None) -> str | None:
    """The user whose requests a listing is restricted to (None: no restriction).

    ``None`` as the viewer is the operator at the database (the CLI without
    ``--as``): unrestricted, as the database itself is.
    """
    if viewer is None or viewer.admin:
        return None
    return viewer.user


def _involved(user: str, requested_by: Any, approvers: Any) -> bool:
    return user == requested_by or (isinstance(approvers, list) and user in approvers)


def may_see_request(
    viewer: Viewer | None,
    request: ExternalAgentApprovalRequest,
    delegators: Sequence[str] = (),
) -> bool:
    """Whether ``viewer`` may read ``request``: its approvers, its requester, who
    voted on it, a delegate of one of its approvers (``delegators``: whom the
    viewer stands in for), admins."""
    user = involving(viewer)
    if user is None or _involved(user, request.requested_by, request.approvers):
        return True
    if any(v.approver_id == user for v in request.votes):
        return True
    return any(a in request.approvers for a in delegators)


def may_see_trail(viewer: Viewer | None, events: list[AuditEvent]) -> bool:
    """Whether ``viewer`` may read the audit trail of a deleted request.

    Everyone its events name as requester or approver may (a request's trail
    is read through :func:`may_see_request` while the request exists).
    """
    user = involving(viewer)
    if user is None:
        return True
    details: list[Mapping[str, Any]] = [e.details for e in events]
    return any(_involved(user, d.get("requested_by"), d.get("approvers")) for d in details)


def may_see_session(viewer: Viewer | None, session: CrossChannelSession) -> bool:
    """Whether ``viewer`` may read ``session`` (its user and admins)."""
    user = involving(viewer)
    return user is None or session.user_id == user
