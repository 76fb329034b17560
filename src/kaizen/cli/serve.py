"""``kaizen serve``: the approvals API and the approver inbox on uvicorn.

A server that cannot start exits 9 (the address cannot be bound: in use,
permission denied, not local), 10 (no usable tokens), 11 (no server extra), 6
(the database refuses its name or credentials; one merely down is a warning),
2 (bad options). It logs on stderr, access log included, as text or JSON lines
(``--log-format``), and serves ``/metrics`` (admin token, or ``--metrics-public``).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from kaizen.cli._logs import FORMATS, logging_to_stderr

if TYPE_CHECKING:
    from kaizen.api.auth import TokenStore
    from kaizen.api.tokens_file import TokenFile
    from kaizen.service import Kaizen

__all__ = ["register"]

#: Environment variable of ``user=token`` pairs (same as ``kaizen.api.auth.ENV_VAR``).
ENV_VAR = "KAIZEN_API_TOKENS"
#: Environment variable naming a token file (used when ``--tokens`` is not given).
TOKENS_FILE_VAR = "KAIZEN_API_TOKENS_FILE"
_MISSING_EXTRA = "the server needs its extra: pip install 'kaizen-dataflow[server]'"
logger = logging.getLogger("kaizen.serve")


def port_number(text: str) -> int:
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
        # create_server() appends the address to strerror; the errno's text says it all.
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
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
        "--port", type=port_number, default=8000, help="TCP port, 1-65535 (default: %(default)s)"
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
    parser.add_argument(
        "--metrics-public",
        action="store_true",
        help="serve /metrics without a token (default: an admin token is required)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="log lines (access log included) as text or one JSON object each "
        "(default: %(default)s)",
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


#: Exit codes of a server that could not start (see :mod:`kaizen.cli`).
EXIT_LISTEN, EXIT_TOKENS, EXIT_NO_EXTRA = 9, 10, 11


class StartFailed(Exception):
    """``kaizen serve`` cannot start: the exit code and the one line that says why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def configure(args: argparse.Namespace) -> tuple[TokenFile | TokenStore, list[str], Any]:
    """Tokens, trusted hosts and the listening socket of ``--tokens``, ``--host``,
    ``--port``, ``--allowed-host`` (and ``--base-url`` where the command has it), or the
    failure to start (``kaizen serve`` and ``kaizen mcp --http``)."""
    from dataflow.errors import ConfigurationError
    from kaizen.api import TokenConfigError

    try:
        tokens = load_tokens(args.tokens)
    except TokenConfigError as exc:
        raise StartFailed(EXIT_TOKENS, str(exc)) from exc
    try:
        hosts = allowed_hosts(args.host, getattr(args, "base_url", None), args.allowed_hosts)
    except ConfigurationError as exc:
        raise StartFailed(2, str(exc)) from exc
    try:
        sock = listen(args.host, args.port)
    except ConfigurationError as exc:
        raise StartFailed(EXIT_LISTEN, str(exc)) from exc
    return tokens, hosts, sock


async def _check_database(kaizen: Kaizen) -> None:
    """Fail to start on a database that refuses us; only warn if it is down for now."""
    from dataflow.errors import ConnectionLostError, DatabaseRefusedError

    try:
        await kaizen.db.ping()
    except DatabaseRefusedError as exc:
        raise StartFailed(6, str(exc)) from exc
    except ConnectionLostError as exc:
        logger.warning(
            "the database does not answer yet (/healthz says 503 until it does): %s", exc
        )


async def _serve(args: argparse.Namespace) -> int:
    with logging_to_stderr(args.log_format):
        try:
            return await _run(args)
        except StartFailed as exc:
            if args.log_format == "json":
                logger.error("cannot start: %s", exc, extra={"fields": {"exit_code": exc.code}})
            else:
                sys.stderr.write(f"kaizen: error: {exc}\n")
            return exc.code


async def _run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from kaizen.api import create_app
    except ImportError as exc:
        raise StartFailed(EXIT_NO_EXTRA, f"{_MISSING_EXTRA} ({exc})") from exc
    from kaizen.service import Kaizen

    tokens, hosts, sock = configure(args)
    if not len(tokens):
        logger.warning("no API token yet; add one with: kaizen tokens add USER")
    with sock:
        async with Kaizen.open(args.database_url, base_url=args.base_url) as kaizen:
            await _check_database(kaizen)
            app = create_app(
                kaizen,
                tokens=tokens,
                base_url=args.base_url,
                allowed_hosts=hosts,
                metrics_public=args.metrics_public,
            )
            config = uvicorn.Config(
                app,
                host=args.host,
                port=args.port,
                lifespan="on",
                log_level="info",
                log_config=None,  # our handler, in --log-format
                access_log=False,  # the app writes its own (kaizen.access), with the route
            )
            # uvicorn handles SIGINT/SIGTERM itself and returns after a graceful shutdown.
            await uvicorn.Server(config).serve(sockets=[sock])
    return 0
