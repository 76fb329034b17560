"""What every handler needs: the app's services and metrics, timed service calls, and
who the request's bearer token authenticates."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from starlette.requests import Request

from kaizen.access import Viewer
from kaizen.api._errors import ApiError
from kaizen.api.metrics import Metrics, timed

if TYPE_CHECKING:
    from kaizen.api.auth import TokenSource
    from kaizen.service import Kaizen

__all__ = ["authenticate", "db_call", "kaizen_of", "metrics_of"]

T = TypeVar("T")


def kaizen_of(request: Request) -> Kaizen:
    """The services the app serves."""
    kaizen: Kaizen = request.app.state.kaizen
    return kaizen


def metrics_of(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def db_call(request: Request, call: str, work: Awaitable[T]) -> T:
    """Await a service call, timed in the metrics as ``call``."""
    return await timed(metrics_of(request), call, work)


def authenticate(request: Request) -> Viewer:
    """Who the request's bearer token authenticates, as the reader of the data.

    Raises:
        ApiError: 401 (with ``WWW-Authenticate``) when the token is missing, unknown,
            expired or revoked.
    """
    tokens: TokenSource = request.app.state.tokens
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    identity = tokens.identify(token.strip()) if scheme.lower() == "bearer" else None
    if identity is None:
        raise ApiError(
            401,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="kaizen"'},
        )
    return Viewer(identity.user, admin=identity.is_admin)
