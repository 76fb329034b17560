"""Cross-channel sessions for Nexus deployments, optionally persisted with DataFlow.

Example:
    >>> from dataflow import DataFlow
    >>> from kaizen.integrations.nexus import NexusSessionManager, SessionStorage
    >>> manager = NexusSessionManager(storage_backend=SessionStorage(DataFlow("sqlite:///s.db")))

Both stores (:class:`SessionStorage`, a database; :class:`MemorySessionStore`, this
process) implement the :class:`SessionStore` protocol the manager works through.
"""

from kaizen.integrations.nexus._store import SessionStore
from kaizen.integrations.nexus.errors import (
    SessionExistsError,
    SessionNotFoundError,
    SessionValidationError,
)
from kaizen.integrations.nexus.memory import MemorySessionStore
from kaizen.integrations.nexus.models import CrossChannelSession
from kaizen.integrations.nexus.session_manager import NexusSessionManager
from kaizen.integrations.nexus.storage import SessionStorage

__all__ = [
    "CrossChannelSession",
    "MemorySessionStore",
    "NexusSessionManager",
    "SessionExistsError",
    "SessionNotFoundError",
    "SessionStorage",
    "SessionStore",
    "SessionValidationError",
]
