"""The manager's shared settings: stored policies and delegations (a mixin).

In-process requirements (``set_approvers``, ``add_requirement``) win; an agent
without one is routed by its stored policy, so every instance, the CLI and the
server route alike. Delegations are always stored: a second instance honours a
delegation it never saw being made. Every change is audited (who, when,
before/after) and never alters requests already created: a request carries the
policy it was created under.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from dataflow.errors import ValidationError
from dataflow.retry import RetryPolicy
from dataflow.values import utcnow
from kaizen.governance._store import ApprovalStore
from kaizen.governance.models import (
    ApprovalRequirement,
    AuditEvent,
    Delegation,
    check_id,
)
from kaizen.governance.policies import requirement_from_json, requirement_to_json

__all__ = ["SharedSettings"]

logger = logging.getLogger("kaizen.governance")


def _readable(agent: str, data: Any) -> ApprovalRequirement:
    try:
        return requirement_from_json(data)
    except ValidationError as exc:
        raise ValidationError(f"stored policy of agent {agent!r} cannot be read: {exc}") from None


class SharedSettings:
    """Policies and delegations through the manager's store (``self._store``)."""

    _store: ApprovalStore
    _requirements: dict[str, ApprovalRequirement]
    retry_policy: RetryPolicy

    # -- policies ----------------------------------------------------------

    async def save_policy(
        self, external_agent_id: str, requirement: ApprovalRequirement, *, actor: str = "system"
    ) -> None:
        """Store ``requirement`` for the agent, for every instance using this storage.

        Requests already created keep the policy they were created under.

        Args:
            external_agent_id: The agent.
            requirement: Its requirement (replacing any stored one).
            actor: Who changes it (recorded in the policy's audit trail).
        """
        check_id("external_agent_id", external_agent_id)
        check_id("actor", actor)
        if not isinstance(requirement, ApprovalRequirement):
            raise ValidationError("requirement must be an ApprovalRequirement")
        data = requirement_to_json(requirement)
        settings = self._store.settings
        await self.retry_policy.run(lambda: settings.save_policy(external_agent_id, data, actor))

    async def stored_policy(self, external_agent_id: str) -> ApprovalRequirement | None:
        """The agent's stored requirement, or None.

        Raises:
            ValidationError: The stored policy is not one this version can read
                (edited by hand); the message names the agent.
        """
        check_id("external_agent_id", external_agent_id)
        data = await self._store.settings.get_policy(external_agent_id)
        return _readable(external_agent_id, data) if data is not None else None

    async def load_policies(self) -> dict[str, ApprovalRequirement]:
        """Every stored requirement by agent id; one that cannot be read (edited by
        hand) is left out and logged, not fatal to the others."""
        found = {}
        for agent, data in (await self._store.settings.policies()).items():
            try:
                found[agent] = _readable(agent, data)
            except ValidationError as exc:
                logger.warning("%s", exc)
        return found

    async def delete_policy(self, external_agent_id: str, *, actor: str = "system") -> bool:
        """Delete the agent's stored requirement; return whether there was one."""
        check_id("external_agent_id", external_agent_id)
        check_id("actor", actor)
        settings = self._store.settings
        return await self.retry_policy.run(lambda: settings.delete_policy(external_agent_id, actor))

    async def policy_history(self, external_agent_id: str) -> list[AuditEvent]:
        """Audit trail of the agent's stored policy: ``policy_set``/``policy_deleted``
        events with ``before`` and ``after``, oldest first."""
        check_id("external_agent_id", external_agent_id)
        return await self._store.settings.history("policy", external_agent_id)

    async def requirement_for(self, external_agent_id: str) -> ApprovalRequirement | None:
        """The requirement requests for the agent are routed by: in process, else stored."""
        check_id("external_agent_id", external_agent_id)
        found = self._requirements.get(external_agent_id)
        return found if found is not None else await self.stored_policy(external_agent_id)

    async def approval_required(
        self, external_agent_id: str, metadata: dict[str, Any]
    ) -> tuple[bool, ApprovalRequirement | None]:
        """Like ``determine_if_approval_required``, with the stored policy as fallback
        (what every instance sees, not only this process's configuration)."""
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("metadata must be a dict")
        requirement = await self.requirement_for(external_agent_id)
        if requirement is not None and requirement.triggered_by(metadata or {}):
            return True, requirement
        return False, None

    # -- delegations -------------------------------------------------------

    async def delegate(
        self,
        approver_id: str,
        *,
        to: str,
        until: datetime | None = None,
        actor: str | None = None,
    ) -> Delegation:
        """Let ``to`` vote for ``approver_id`` (until ``until``, or until revoked).

        Stored: every instance honours it. A delegate votes for the delegator
        (the vote's ``on_behalf_of``), at most once per request and never on a
        request of their own; only direct delegations count (no chains).

        Args:
            approver_id: Who delegates.
            to: The delegate.
            until: When it ends (timezone-aware), or None.
            actor: Who makes it (default: the approver).

        Raises:
            ValidationError: Bad ids, delegating to oneself, a naive or past ``until``.
        """
        check_id("approver id", approver_id)
        check_id("delegate id", to)
        actor = check_id("actor", actor if actor is not None else approver_id)
        if to == approver_id:
            raise ValidationError("an approver cannot delegate to themselves")
        now = utcnow()
        if until is not None:
            if not isinstance(until, datetime) or until.utcoffset() is None:
                raise ValidationError("until must be a timezone-aware datetime or None")
            if until <= now:
                raise ValidationError("until must be in the future")
        delegation = Delegation(approver_id, to, until, now, actor)
        settings = self._store.settings
        await self.retry_policy.run(lambda: settings.save_delegation(delegation))
        return delegation

    async def revoke_delegation(
        self, approver_id: str, *, to: str, actor: str | None = None
    ) -> bool:
        """End ``to``'s delegation from ``approver_id``; return whether it existed.

        Votes already cast for the approver stay; later ones are refused.
        """
        check_id("approver id", approver_id)
        check_id("delegate id", to)
        actor = check_id("actor", actor if actor is not None else approver_id)
        settings = self._store.settings
        return await self.retry_policy.run(
            lambda: settings.delete_delegation(approver_id, to, actor)
        )

    async def delegations(
        self, approver_id: str | None = None, *, delegate: str | None = None
    ) -> list[Delegation]:
        """Active delegations, from ``approver_id`` and/or to ``delegate``."""
        for what, value in (("approver id", approver_id), ("delegate id", delegate)):
            if value is not None:
                check_id(what, value)
        found = await self._store.settings.delegations(approver=approver_id, delegate=delegate)
        now = utcnow()
        return [d for d in found if d.active(now)]

    async def delegation_history(self, approver_id: str) -> list[AuditEvent]:
        """Audit trail of an approver's delegations, oldest first."""
        check_id("approver id", approver_id)
        return await self._store.settings.history("delegation", approver_id)
