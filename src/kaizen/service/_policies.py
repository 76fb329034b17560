"""Stored policies and delegations as plain data."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dataflow.errors import NotFoundError, ValidationError
from kaizen.governance import (
    ApprovalLevel,
    ApprovalRequirement,
    Delegation,
)
from kaizen.governance.policies import requirement_to_json

if TYPE_CHECKING:
    from kaizen.service import Kaizen

__all__ = [
    "delegate",
    "delegation_dict",
    "delete_policy",
    "get_policy",
    "list_delegations",
    "list_policies",
    "policy_dict",
    "revoke_delegation",
    "set_policy",
]


def policy_dict(agent: str, requirement: ApprovalRequirement) -> dict[str, Any]:
    """A stored policy as a plain dict: ``agent`` and the requirement's JSON form."""
    return {"agent": agent, **requirement_to_json(requirement)}


async def set_policy(
    k: Kaizen,
    agent: str,
    *,
    approvers: list[str],
    quorum: int = 1,
    timeout_seconds: float = 3600,
    escalate_to: list[str] | None = None,
    reason: str | None = None,
    actor: str = "operator",
) -> dict[str, Any]:
    """Store a CUSTOM policy for ``agent`` (every instance routes by it); return it.

    What this cannot express is kept from the agent's stored policy: its triggers
    (``require_for_*``) and ``excluded_approvers`` (separation of duties is never
    loosened by a command that does not mention it).

    Raises:
        ValidationError: Bad ids, quorum or timeout (nothing is stored).
    """
    before = await k.approvals.stored_policy(agent)
    kept: dict[str, Any] = {}
    if before is not None:
        kept = {
            "require_for_environments": before.require_for_environments,
            "require_for_cost_above": before.require_for_cost_above,
            "require_for_data_classifications": before.require_for_data_classifications,
            "require_for_operations": before.require_for_operations,
            "excluded_approvers": before.excluded_approvers,
        }
    requirement = ApprovalRequirement(
        ApprovalLevel.CUSTOM,
        custom_approvers=list(approvers),
        approval_timeout_seconds=timeout_seconds,
        approval_reason=reason,
        quorum=quorum,
        escalate_to=escalate_to or None,
        **kept,
    )
    if not approvers:
        raise ValidationError("a policy needs at least one approver")
    if quorum > len(set(approvers)):
        raise ValidationError(f"quorum {quorum} is more than the {len(set(approvers))} approvers")
    await k.approvals.save_policy(agent, requirement, actor=actor)
    return policy_dict(agent, requirement)


async def list_policies(k: Kaizen) -> list[dict[str, Any]]:
    """Every stored policy, by agent id."""
    return [policy_dict(a, r) for a, r in (await k.approvals.load_policies()).items()]


async def get_policy(k: Kaizen, agent: str) -> dict[str, Any]:
    """One stored policy, with its audit ``history`` (who, when, before/after).

    Raises:
        NotFoundError: The agent has no stored policy.
    """
    requirement = await k.approvals.stored_policy(agent)
    if requirement is None:
        raise NotFoundError(f"no stored policy for agent {agent!r}")
    history = [dataclasses.asdict(e) for e in await k.approvals.policy_history(agent)]
    return {**policy_dict(agent, requirement), "history": history}


async def delete_policy(k: Kaizen, agent: str, *, actor: str = "operator") -> None:
    """Delete ``agent``'s stored policy.

    Raises:
        NotFoundError: It has none.
    """
    if not await k.approvals.delete_policy(agent, actor=actor):
        raise NotFoundError(f"no stored policy for agent {agent!r}")


def delegation_dict(delegation: Delegation) -> dict[str, Any]:
    """A delegation as a plain dict."""
    return dataclasses.asdict(delegation)


async def delegate(
    k: Kaizen,
    approver: str,
    to: str,
    *,
    until: datetime | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Let ``to`` vote for ``approver`` (until ``until``); return the delegation."""
    return delegation_dict(await k.approvals.delegate(approver, to=to, until=until, actor=actor))


async def revoke_delegation(k: Kaizen, approver: str, to: str, *, actor: str | None = None) -> None:
    """End ``to``'s delegation from ``approver``.

    Raises:
        NotFoundError: There is none.
    """
    if not await k.approvals.revoke_delegation(approver, to=to, actor=actor):
        raise NotFoundError(f"{to!r} holds no delegation from {approver!r}")


async def list_delegations(
    k: Kaizen, *, approver: str | None = None, delegate: str | None = None
) -> list[dict[str, Any]]:
    """Active delegations, from ``approver`` and/or to ``delegate``."""
    found = await k.approvals.delegations(approver, delegate=delegate)
    return [delegation_dict(d) for d in found]
