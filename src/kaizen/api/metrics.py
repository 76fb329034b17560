"""``GET /metrics``: what the server did, in Prometheus' text format (``prometheus-client``).

Each app has a registry of its own (several apps in one process count apart):

- ``kaizen_http_requests_total{method, route, status}`` and
  ``kaizen_http_request_duration_seconds{method, route}``: every HTTP request,
  by route template (``/api/approvals/{request_id:path}/approve``; ``unmatched``
  for paths no route serves), counted by :class:`ObserveRequests`;
- ``kaizen_approval_decisions_total{action, outcome}``: votes sent to the API,
  ``action`` ``approve`` or ``reject``; ``outcome`` ``approved``, ``rejected``,
  ``voted`` (counted, the quorum not yet met) or the error code the API answered
  (``already_decided``, ``already_voted``, ``not_an_approver``, ``own_request``,
  ``not_found``, ``invalid_request``, ``unavailable``...);
- ``kaizen_db_call_duration_seconds{call}``: how long each service call on the
  database took (``list_approvals``, ``approve``, ``pending_count``...), failed
  ones included;
- ``kaizen_approvals_pending``: requests pending, counted by one ``COUNT`` query
  at each scrape; ``kaizen_database_up``: 1 when that query answered (else 0, and
  the pending gauge keeps its last value);
- the process' CPU, memory, file descriptors and garbage collections.

The endpoint needs an admin token unless the app is built with ``metrics_public``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from kaizen.api._errors import ApiError
from kaizen.governance.models import ApprovalStatus
from kaizen.outcomes import outcome_of

if TYPE_CHECKING:
    from kaizen.service import Kaizen

__all__ = ["Metrics", "decided", "metrics_endpoint", "timed"]

T = TypeVar("T")
logger = logging.getLogger("kaizen.api")

#: Seconds a scrape waits for the pending count.
SCRAPE_TIMEOUT = 5.0
_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: A vote's outcome by the request's status after it.
_BY_STATUS = {"approved": "approved", "rejected": "rejected", "pending": "voted"}


class Metrics:
    """The app's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.requests = Counter(
            "kaizen_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "kaizen_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=registry,
        )
        self.decisions = Counter(
            "kaizen_approval_decisions",
            "Votes sent to the API, by action (approve, reject) and outcome.",
            ["action", "outcome"],
            registry=registry,
        )
        self.db_seconds = Histogram(
            "kaizen_db_call_duration_seconds",
            "Time of the service calls on the database, by call (failed ones included).",
            ["call"],
            buckets=_DB_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "kaizen_approvals_pending",
            "Approval requests pending, counted at scrape time.",
            registry=registry,
        )
        self.database_up = Gauge(
            "kaizen_database_up",
            "1 when the database answered the scrape's pending count, else 0.",
            registry=registry,
        )

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    async def scrape(self, kaizen: Kaizen) -> bytes:
        """The exposition, with the pending gauge counted now."""
        try:
            async with asyncio.timeout(SCRAPE_TIMEOUT):
                pending = await timed(
                    self,
                    "pending_count",
                    kaizen.approval_storage.count_by_status(ApprovalStatus.PENDING),
                )
        except Exception as exc:
            logger.warning("metrics: pending count failed: %s", type(exc).__name__)
            self.database_up.set(0)
        else:
            self.pending.set(pending)
            self.database_up.set(1)
        return generate_latest(self.registry)


async def timed(metrics: Metrics, call: str, work: Awaitable[T]) -> T:
    """Await ``work`` (a service call), observing how long it took as ``call``."""
    start = time.perf_counter()
    try:
        return await work
    finally:
        metrics.db_seconds.labels(call).observe(time.perf_counter() - start)


async def decided(metrics: Metrics, action: str, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Await a vote (``action``: ``approve`` or ``reject``), counting its outcome."""
    try:
        approval = await timed(metrics, action, work)
    except Exception as exc:
        outcome = outcome_of(exc)
        code = exc.code if isinstance(exc, ApiError) else outcome.code if outcome else "error"
        metrics.decisions.labels(action, code).inc()
        raise
    status = str(approval.get("status"))
    metrics.decisions.labels(action, _BY_STATUS.get(status, status)).inc()
    return approval


def metrics_endpoint(public: bool) -> Any:
    """The ``/metrics`` handler: admin token required unless ``public``."""
    from kaizen.api._context import authenticate

    async def endpoint(request: Request) -> Response:
        if not public and not authenticate(request).admin:
            raise ApiError(403, "the metrics need an admin token", code="admin_required")
        metrics: Metrics = request.app.state.metrics
        body = await metrics.scrape(request.app.state.kaizen)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return endpoint
