"""Helpers of the API tests: users and tokens, seeding requests, snapshots of stored state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from kaizen import service
from kaizen.api import TokenStore, hash_token
from kaizen.api.auth import tokens_from_env
from kaizen.governance.models import ApprovalStatus, ExternalAgentApprovalRequest
from kaizen.service import Kaizen

#: user id -> bearer token of the test users (role "user"): two approvers, the
#: requester of the seeded requests, and a stranger involved in nothing.
TOKENS = {
    "lead-456": "tok-lead-7f3a9c",
    "admin-1": "tok-admin-51d0e2",
    "user-123": "tok-requester-9b1e44",
    "outsider": "tok-outsider-c0ffee",
}
HASHED = {hash_token(token): user for user, token in TOKENS.items()}
#: The admin user (role "admin": reads everything) and its token.
ADMIN, ADMIN_TOKEN = "root", "tok-root-4d2c77"
TOKENS[ADMIN] = ADMIN_TOKEN


def token_store() -> TokenStore:
    """The tokens of every test user, the admin's with its role."""
    return TokenStore.merged([TokenStore(HASHED), tokens_from_env(f"{ADMIN}:admin={ADMIN_TOKEN}")])


def auth(user: str) -> dict[str, str]:
    """The Authorization header of ``user``."""
    return {"Authorization": f"Bearer {TOKENS[user]}"}


async def seed(
    kaizen: Kaizen,
    *,
    request_id: str | None = None,
    agent: str = "copilot-001",
    requested_by: str = "user-123",
    approvers: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    reason: str | None = "production deploy",
    quorum: int = 1,
) -> str:
    """Store a pending request (through the storage, as the manager would) and return its id."""
    now = datetime.now(UTC)
    request = ExternalAgentApprovalRequest(
        id=request_id or f"req-{uuid.uuid4()}",
        external_agent_id=agent,
        requested_by=requested_by,
        approvers=approvers if approvers is not None else ["lead-456", "admin-1"],
        status=ApprovalStatus.PENDING,
        approval_reason=reason,
        request_metadata=metadata if metadata is not None else {"environment": "production"},
        created_at=now,
        deadline_at=now + timedelta(hours=1),
        quorum=quorum,
    )
    return await kaizen.approval_storage.save(request)


async def snapshot(kaizen: Kaizen, request_id: str) -> tuple[dict[str, Any], list[Any]]:
    """The stored request and its audit trail, to show an error changed nothing."""
    return await service.get_approval(kaizen, request_id), await service.approval_audit(
        kaizen, request_id
    )


def status_of(approval: dict[str, Any]) -> str:
    """The status of a service approval dict, whether an enum or its value."""
    status = approval["status"]
    return str(getattr(status, "value", status))


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check ``response`` is our error document with ``status`` (and ``code``); return it."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return dict(error)
