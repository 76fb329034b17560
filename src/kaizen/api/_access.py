"""Every HTTP request, counted and logged: the outermost middleware of the app.

The access log (logger ``kaizen.access``, INFO) has one line per request, with
its fields for the JSON log format: ``method``, ``path``, ``route`` (the route
template, ``unmatched`` when none served it), ``status``, ``duration_ms`` and
``client``. Query strings are left out (they may name users); tokens never
appear (they travel in a header).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from kaizen.api.metrics import Metrics

__all__ = ["ObserveRequests", "route_of"]

access_logger = logging.getLogger("kaizen.access")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: A decoded path may hold line breaks: a log line stays one line.
_CONTROL = {c: f"\\x{c:02x}" for c in range(32)}


def route_of(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``unmatched``: none did)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class ObserveRequests:
    """ASGI middleware: counts each request in ``metrics`` and writes its access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the server answers when the app fails before responding

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._done(scope, status, time.perf_counter() - start)

    def _done(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = route_of(scope)
        self.metrics.request_done(method, route, status, seconds)
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "path": str(scope["path"]).translate(_CONTROL),
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "client": client[0] if client else None,
        }
        access_logger.info(
            "%s %s %s %d %.1fms",
            fields["client"] or "-",
            fields["method"],
            fields["path"],
            status,
            fields["duration_ms"],
            extra={"fields": fields},
        )
