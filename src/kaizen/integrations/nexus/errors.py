"""Errors of the cross-channel session package, rooted in DataFlow's exception tree."""

from __future__ import annotations

from dataflow.errors import DuplicateKeyError, NotFoundError, ValidationError

__all__ = ["SessionExistsError", "SessionNotFoundError", "SessionValidationError"]


class SessionValidationError(ValidationError):
    """Session input (state, ids, TTL, times) was rejected before anything was written."""


class SessionNotFoundError(NotFoundError):
    """A session that must exist in storage does not."""


class SessionExistsError(DuplicateKeyError):
    """A session with the same id already exists (stored, or live in a manager's memory)."""
