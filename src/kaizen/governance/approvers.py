"""Who may approve: teams and their leads, org admins, the owner."""

from __future__ import annotations

from dataclasses import dataclass, field

from kaizen.governance.models import ApprovalLevel, check_id

__all__ = ["ApproverDirectory"]


@dataclass
class ApproverDirectory:
    """The organisation chart approvals are routed by.

    Args:
        teams: User id -> team id.
        team_leads: Team id -> lead user ids.
        org_admins: Organisation administrators.
        owner: The organisation owner.

    Example:
        >>> directory = ApproverDirectory(
        ...     teams={"user-123": "core"}, team_leads={"core": ["lead-456"]}
        ... )
        >>> directory.approvers_for(ApprovalLevel.TEAM_LEAD, "user-123")
        ['lead-456']
    """

    teams: dict[str, str] = field(default_factory=dict)
    team_leads: dict[str, list[str]] = field(default_factory=dict)
    org_admins: list[str] = field(default_factory=list)
    owner: str | None = None

    def set_team(self, user_id: str, team_id: str) -> None:
        """Put ``user_id`` in team ``team_id``."""
        self.teams[check_id("user id", user_id)] = check_id("team id", team_id)

    def add_team_lead(self, team_id: str, lead_id: str) -> None:
        """Make ``lead_id`` a lead of ``team_id`` (a team may have several)."""
        leads = self.team_leads.setdefault(check_id("team id", team_id), [])
        if check_id("lead id", lead_id) not in leads:
            leads.append(lead_id)

    def add_org_admin(self, user_id: str) -> None:
        """Make ``user_id`` an organisation administrator."""
        if check_id("admin id", user_id) not in self.org_admins:
            self.org_admins.append(user_id)

    def set_owner(self, user_id: str) -> None:
        """Make ``user_id`` the organisation owner."""
        self.owner = check_id("owner id", user_id)

    def approvers_for(
        self, level: ApprovalLevel, requested_by: str, custom: list[str] | None = None
    ) -> list[str]:
        """The approvers of a request at ``level`` made by ``requested_by`` (may be empty).

        Args:
            level: The requirement's approval level.
            requested_by: The requesting user (TEAM_LEAD routes to their team's leads).
            custom: The requirement's custom approvers (CUSTOM level).

        Returns:
            Distinct approver ids in configuration order.
        """
        if level is ApprovalLevel.TEAM_LEAD:
            team = self.teams.get(requested_by)
            found = list(self.team_leads.get(team, [])) if team is not None else []
        elif level is ApprovalLevel.ADMIN:
            found = list(self.org_admins)
        elif level is ApprovalLevel.OWNER:
            found = [self.owner] if self.owner else []
        else:
            found = list(custom or [])
        return list(dict.fromkeys(found))
