"""Only answer requests addressed to a trusted Host, so a forged Host never shapes a link."""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from dataflow.errors import ConfigurationError
from kaizen.api._errors import error_response

__all__ = ["LOOPBACK_HOSTS", "HostCheck", "host_of", "trusted_hosts"]

#: Host names the app answers to when neither ``base_url`` nor ``allowed_hosts`` is given.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\]")


def trusted_hosts(base_url: str | None, allowed_hosts: Sequence[str] | None) -> list[str] | None:
    """The Host names requests may carry (None: any; links then never use the Host).

    Raises:
        ConfigurationError: An entry is not a host name.
    """
    if allowed_hosts is None:
        return None if base_url else list(LOOPBACK_HOSTS)
    if isinstance(allowed_hosts, str):
        raise ConfigurationError("allowed_hosts takes a list of host names, not one string")
    hosts = list(allowed_hosts)
    for host in hosts:
        if not isinstance(host, str) or not _HOST.fullmatch(host):
            raise ConfigurationError(
                f"allowed host {host!r} is not a host name (e.g. kaizen.example.com, "
                "*.example.com, 127.0.0.1, [::1])"
            )
    return [h.lower() for h in hosts]


def host_of(header: str | None) -> str | None:
    """The host name of a Host header (lower case, without the port), or None."""
    if not header:
        return None
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1].lower() if end > 0 else None
    return header.partition(":")[0].lower() or None


class HostCheck:
    """ASGI middleware: 400 (our JSON error) for a Host that is not allowed.

    ``*.example.com`` allows every subdomain of example.com (not example.com itself).
    """

    def __init__(self, app: ASGIApp, hosts: Sequence[str]) -> None:
        self.app = app
        self.exact = frozenset(h for h in hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))

    def allowed(self, host: str) -> bool:
        """Whether ``host`` (without port) is trusted."""
        return host in self.exact or host.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = host_of(Headers(scope=scope).get("host"))
            if host is None or not self.allowed(host):
                response = error_response(
                    400,
                    "this server does not answer to that Host header "
                    "(configure its public URL or allowed hosts)",
                    code="untrusted_host",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
