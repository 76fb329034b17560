"""``kaizen serve``: the approvals API and the approver inbox on uvicorn."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kaizen.api.auth import TokenStore
    from kaizen.api.tokens_file import TokenFile

__all__ = ["register"]

#: Environment variable of ``user=token`` pairs (same as ``kaizen.api.auth.ENV_VAR``).
ENV_VAR = "KAIZEN_API_TOKENS"
#: Environment variable naming a token file (used when ``--tokens`` is not given).
TOKENS_FILE_VAR = "KAIZEN_API_TOKENS_FILE"
_MISSING_EXTRA = "the server needs its extra: pip install 'kaizen-dataflow[server]'"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (bound here, so a busy port is our error).

    Raises:
        ConfigurationError: The address cannot be bound (in use, not local...).
    """
    from dataflow.errors import ConfigurationError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(f"cannot listen on {host}:{port}: {reason}") from exc


def register(subparsers: Any) -> None:
    """Add the ``serve`` command to the ``kaizen`` parser's subcommands."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the approvals API and the approver inbox",
        description=(
            "Serve the HTTP approvals API (/api/...), its OpenAPI document (/openapi.json) "
            f"and the approver inbox (/). Tokens come from --tokens FILE or ${TOKENS_FILE_VAR} "
            "(managed with: kaizen tokens add|list|revoke; reloaded when the file changes) "
            f"and/or ${ENV_VAR} (user=token or user:admin=token pairs)."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=_port, default=8000, help="TCP port, 1-65535 (default: %(default)s)"
    )
    parser.add_argument(
        "--tokens", metavar="FILE", help="token file (written by: kaizen tokens add)"
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="public URL of this server, used in approve/reject links",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        dest="allowed_hosts",
        help="a Host name requests may be addressed to (repeatable; *.example.com for "
        "subdomains); others get 400, so no link is ever built from a forged Host "
        "(default: the --base-url host, else the bind address)",
    )
    parser.set_defaults(handler=_serve)


_ANY_INTERFACE = ("0.0.0.0", "::", "")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def allowed_hosts(host: str, base_url: str | None, given: list[str] | None) -> list[str]:
    """The Host names ``kaizen serve`` answers to.

    Raises:
        ConfigurationError: Bound to every interface with neither ``--base-url`` nor
            ``--allowed-host``: no Host could be trusted.
    """
    from urllib.parse import urlsplit

    from dataflow.errors import ConfigurationError

    if given:
        return list(given)
    if base_url:
        public = urlsplit(base_url).hostname
        if not public:
            raise ConfigurationError(f"--base-url {base_url!r} names no host")
        return [f"[{public}]" if ":" in public else public]
    if host in _ANY_INTERFACE:
        raise ConfigurationError(
            f"--host {host or '(all)'} listens on every interface: say which Host names "
            "are yours with --base-url URL or --allowed-host HOST"
        )
    if host in _LOOPBACK:
        return ["127.0.0.1", "localhost", "[::1]"]
    return [f"[{host}]" if ":" in host else host]


def load_tokens(path: str | None) -> TokenFile | TokenStore:
    """The tokens from ``path`` (else the token-file variable) and/or ``KAIZEN_API_TOKENS``.

    Args:
        path: The token file, or None for ``$KAIZEN_API_TOKENS_FILE`` (if set).

    Returns:
        With a token file, a :class:`~kaizen.api.tokens_file.TokenFile` that reloads
        it when it changes, serving the environment's tokens too; else the
        environment's tokens.

    Raises:
        TokenConfigError: A source is malformed, or no token source is configured
            (a token file may hold no token yet: ``kaizen tokens add`` can add one).
    """
    from kaizen.api.auth import TokenConfigError, tokens_from_env
    from kaizen.api.tokens_file import TokenFile

    path = path or os.environ.get(TOKENS_FILE_VAR)
    env = tokens_from_env(os.environ.get(ENV_VAR, ""))
    if path:
        return TokenFile(path, extra=env)
    if not len(env):
        raise TokenConfigError(
            f"no API tokens configured: use --tokens FILE, ${TOKENS_FILE_VAR} or ${ENV_VAR}"
        )
    return env


async def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from kaizen.api import TokenConfigError, create_app
    except ImportError as exc:
        sys.stderr.write(f"kaizen: error: {_MISSING_EXTRA} ({exc})\n")
        return 1
    from dataflow.errors import ConfigurationError
    from kaizen.service import Kaizen

    try:
        tokens = load_tokens(args.tokens)
        hosts = allowed_hosts(args.host, args.base_url, args.allowed_hosts)
        sock = listen(args.host, args.port)
    except (TokenConfigError, ConfigurationError) as exc:
        sys.stderr.write(f"kaizen: error: {exc}\n")
        return 2
    if not len(tokens):
        sys.stderr.write(
            "kaizen: warning: no API token yet; add one with: kaizen tokens add USER\n"
        )
    with sock:
        async with Kaizen.open(args.database_url, base_url=args.base_url) as kaizen:
            app = create_app(kaizen, tokens=tokens, base_url=args.base_url, allowed_hosts=hosts)
            config = uvicorn.Config(
                app, host=args.host, port=args.port, lifespan="on", log_level="info"
            )
            # uvicorn handles SIGINT/SIGTERM itself and returns after a graceful shutdown.
            await uvicorn.Server(config).serve(sockets=[sock])
    return 0
