"""The Starlette application: approvals API, OpenAPI document and approver inbox."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kaizen.api._access import ObserveRequests
from kaizen.api._errors import exception_handlers
from kaizen.api._hosts import LOOPBACK_HOSTS, HostCheck, trusted_hosts
from kaizen.api.auth import TokenConfigError, TokenSource, TokenStore
from kaizen.api.metrics import Metrics, metrics_endpoint
from kaizen.api.openapi import openapi_document
from kaizen.api.routes import api_routes

if TYPE_CHECKING:
    from kaizen.service import Kaizen

__all__ = ["LOOPBACK_HOSTS", "create_app"]

# The inbox only talks to this origin, runs only its own script and is never framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/inbox.js": ("inbox.js", "text/javascript; charset=utf-8"),
    "/static/common.js": ("common.js", "text/javascript; charset=utf-8"),
    "/static/votes.js": ("votes.js", "text/javascript; charset=utf-8"),
    "/static/inbox.css": ("inbox.css", "text/css; charset=utf-8"),
}


def _static_routes() -> list[BaseRoute]:
    folder = resources.files("kaizen.api") / "static"
    routes: list[BaseRoute] = []
    for path, (name, media_type) in _STATIC.items():
        content = (folder / name).read_bytes()

        async def page(
            request: Request, content: bytes = content, media_type: str = media_type
        ) -> Response:
            return Response(content, media_type=media_type, headers=_PAGE_HEADERS)

        routes.append(Route(path, page, methods=["GET"]))
        if name == "index.html":
            # The links sent to approvers: the inbox opened at one request (GET changes nothing).
            routes.append(Route("/approvals/{request_id:path}", page, methods=["GET"]))
    return routes


def _lifespan(
    kaizen_or_url: Kaizen | str, base_url: str | None
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Open the database for the app's lifetime when given a URL; else only publish it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not isinstance(kaizen_or_url, str):
            app.state.kaizen = kaizen_or_url
            yield
            return
        from kaizen.service import Kaizen

        async with Kaizen.open(kaizen_or_url, base_url=base_url) as kaizen:
            app.state.kaizen = kaizen
            yield

    return lifespan


def create_app(
    kaizen_or_url: Kaizen | str,
    *,
    tokens: TokenSource | Mapping[str, str],
    base_url: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    metrics_public: bool = False,
) -> Starlette:
    """Build the ASGI application.

    Args:
        kaizen_or_url: An open :class:`~kaizen.service.Kaizen` (the caller closes
            it), or a database URL the app opens on startup and closes on shutdown.
        tokens: The bearer tokens: a :class:`TokenStore`, any
            :class:`~kaizen.api.auth.TokenSource` (e.g. a reloading
            :class:`~kaizen.api.tokens_file.TokenFile`), or a mapping of sha256 hex
            digest of a token -> user id.
        base_url: Public URL the server is reached at; prefixes the approve/reject
            links (as in the notifier's payload) and names the OpenAPI server.
            Default: the URL each request came in on, if its Host is allowed.
        allowed_hosts: Host names requests may be addressed to (``*.example.com``
            matches subdomains); others get 400 before anything else runs, so a
            forged Host never ends up in a link. Default: any when ``base_url``
            is given (links do not use the Host then), else the loopback names.
        metrics_public: Serve ``/metrics`` without a token (default: an admin
            token is required), for a scraper behind a network boundary.

    Returns:
        The Starlette app.

    Raises:
        TokenConfigError: ``tokens`` is malformed, or neither a mapping nor a token source.
        ConfigurationError: ``allowed_hosts`` holds something that is not a host name.
    """
    store: TokenSource = TokenStore(tokens) if isinstance(tokens, Mapping) else tokens
    if not isinstance(store, TokenSource):
        raise TokenConfigError("tokens must be a mapping or have identify(token)")
    document = openapi_document(base_url)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    routes = [
        *api_routes(),
        Route("/metrics", metrics_endpoint(metrics_public), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *_static_routes(),
    ]
    metrics = Metrics()
    hosts = trusted_hosts(base_url, allowed_hosts)
    middleware = [Middleware(ObserveRequests, metrics=metrics)]  # outermost: sees every answer
    if hosts is not None:
        middleware.append(Middleware(HostCheck, hosts=hosts))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers(),
        lifespan=_lifespan(kaizen_or_url, base_url),
    )
    app.state.tokens = store
    app.state.metrics = metrics
    app.state.base_url = base_url
    if not isinstance(kaizen_or_url, str):
        # Usable without running the lifespan (e.g. httpx's ASGITransport in tests).
        app.state.kaizen = kaizen_or_url
    return app
