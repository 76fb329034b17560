"""Governance: durable, exactly-once approval of external agent invocations.

Example:
    >>> from dataflow import DataFlow
    >>> from kaizen.governance import ExternalAgentApprovalManager, ExternalAgentApprovalStorage
    >>> storage = ExternalAgentApprovalStorage(DataFlow("sqlite:///app.db"))
    >>> manager = ExternalAgentApprovalManager(storage_backend=storage)
"""

from kaizen.governance._store import ApprovalStore, SettingsStore
from kaizen.governance.approval_manager import ExternalAgentApprovalManager, Sweep
from kaizen.governance.approvers import ApproverDirectory
from kaizen.governance.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
    ApprovalConfigurationError,
    ApprovalNotFoundError,
    GovernanceError,
    NotAuthorizedError,
    QuorumUnreachableError,
    SelfDecisionError,
)
from kaizen.governance.memory import InMemoryApprovalStore
from kaizen.governance.models import (
    ApprovalLevel,
    ApprovalRequirement,
    ApprovalStatus,
    AuditEvent,
    AuditProblem,
    AuditReport,
    Delegation,
    ExternalAgentApprovalRequest,
    Vote,
)
from kaizen.governance.notify import ControlProtocol, approval_payload
from kaizen.governance.storage import ExternalAgentApprovalStorage

__all__ = [
    "AlreadyDecidedError",
    "AlreadyVotedError",
    "ApprovalStore",
    "ApprovalConfigurationError",
    "ApprovalLevel",
    "ApprovalNotFoundError",
    "ApprovalRequirement",
    "ApprovalStatus",
    "ApproverDirectory",
    "AuditEvent",
    "AuditProblem",
    "AuditReport",
    "Delegation",
    "ControlProtocol",
    "ExternalAgentApprovalManager",
    "ExternalAgentApprovalRequest",
    "ExternalAgentApprovalStorage",
    "GovernanceError",
    "InMemoryApprovalStore",
    "NotAuthorizedError",
    "QuorumUnreachableError",
    "SelfDecisionError",
    "SettingsStore",
    "Sweep",
    "Vote",
    "approval_payload",
]
