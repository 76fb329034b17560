"""The one table from our errors to what the surfaces report: HTTP status and code
for the API, exit code for the ``kaizen`` command.

The first row whose class the error is an instance of wins, so subclasses come
before their bases. An error that is not ours has no row: the API answers 500
without echoing it, the CLI lets it crash with its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    IntegrityError,
    NotFoundError,
    TimeoutError,
    ValidationError,
)
from kaizen.governance.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
    NotAuthorizedError,
    QuorumUnreachableError,
    SelfDecisionError,
)

__all__ = ["OUTCOMES", "Outcome", "outcome_of", "public_message"]


@dataclass(frozen=True)
class Outcome:
    """How the API and the CLI report one kind of error."""

    status: int
    code: str
    exit_code: int


OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (SelfDecisionError, Outcome(403, "own_request", 5)),
    (NotAuthorizedError, Outcome(403, "not_an_approver", 5)),
    (AlreadyVotedError, Outcome(409, "already_voted", 4)),
    (QuorumUnreachableError, Outcome(409, "quorum_unreachable", 4)),
    (AlreadyDecidedError, Outcome(409, "already_decided", 4)),
    (NotFoundError, Outcome(404, "not_found", 3)),
    (TimeoutError, Outcome(503, "database_timeout", 6)),
    (ConnectionLostError, Outcome(503, "unavailable", 6)),
    (ValidationError, Outcome(422, "invalid_request", 7)),
    (IntegrityError, Outcome(409, "conflict", 7)),
    (ConcurrencyError, Outcome(409, "conflict", 1)),
    (DatabaseRefusedError, Outcome(503, "database_refused", 6)),
    (ConfigurationError, Outcome(500, "configuration_error", 2)),
    (DataFlowError, Outcome(500, "internal_error", 1)),
)


def outcome_of(exc: BaseException) -> Outcome | None:
    """The row for ``exc``, or None when it is not one of our errors."""
    for cls, outcome in OUTCOMES:
        if isinstance(exc, cls):
            return outcome
    return None


def public_message(exc: BaseException) -> str:
    """What may be shown to a client: our own message, or a generic one for the
    database driver's text (it may quote stored data) and unreachable databases."""
    if isinstance(exc, TimeoutError):
        return "the database did not answer in time"
    if isinstance(exc, ConnectionLostError):
        return "the database is unreachable"
    if isinstance(exc, DatabaseRefusedError):  # its message names the server's database
        return "the database refused the server's configuration (database name or credentials)"
    outcome = outcome_of(exc)
    if outcome is None or outcome.status >= 500:
        return "internal server error"
    if isinstance(exc, DataFlowError) and exc.from_driver:
        if isinstance(exc, ValidationError):
            return "the database refused a value of the request"
        return "the database refused the request"
    return str(exc)
