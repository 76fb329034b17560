"""Requirements as stored policies: the JSON form every instance reads back."""

from __future__ import annotations

from typing import Any

from dataflow.errors import ValidationError
from kaizen.governance.models import ApprovalLevel, ApprovalRequirement

__all__ = ["requirement_from_json", "requirement_to_json"]

_LISTS = (
    "require_for_environments",
    "require_for_data_classifications",
    "require_for_operations",
    "custom_approvers",
    "excluded_approvers",
)


def requirement_to_json(requirement: ApprovalRequirement) -> dict[str, Any]:
    """``requirement`` as a JSON object (levels by their value)."""
    escalate = requirement.escalate_to
    return {
        "approval_level": requirement.approval_level.value,
        **{name: list(getattr(requirement, name)) for name in _LISTS},
        "require_for_cost_above": requirement.require_for_cost_above,
        "approval_timeout_seconds": requirement.approval_timeout_seconds,
        "approval_reason": requirement.approval_reason,
        "quorum": requirement.quorum,
        "escalate_to": escalate.value if isinstance(escalate, ApprovalLevel) else escalate,
    }


def requirement_from_json(data: Any) -> ApprovalRequirement:
    """The requirement a stored policy describes.

    Raises:
        ValidationError: ``data`` is not a policy this version can read.
    """
    if not isinstance(data, dict):
        raise ValidationError("a stored policy must be a JSON object")
    try:
        level = ApprovalLevel(data.get("approval_level"))
        escalate = data.get("escalate_to")
        if isinstance(escalate, str):
            escalate = ApprovalLevel(escalate)
    except ValueError as exc:
        raise ValidationError(f"stored policy has an unknown approval level: {exc}") from None
    known = {*_LISTS, "require_for_cost_above", "approval_timeout_seconds", "approval_reason"}
    fields = {k: data[k] for k in known if k in data}
    return ApprovalRequirement(level, **fields, quorum=data.get("quorum", 1), escalate_to=escalate)
