"""``kaizen mcp``: the MCP server, over stdio (default) or streamable HTTP.

Over stdio it acts for ``--user ID`` (the MCP client launched it: whoever can run
it can act as that user, as with the CLI's ``--as``). Over HTTP (``--http``) each
request carries a bearer token from the same token store as ``kaizen serve``
(``--tokens FILE``, ``$KAIZEN_API_TOKENS_FILE``, ``$KAIZEN_API_TOKENS``), and the
endpoint is ``http://HOST:PORT/mcp``. Exit codes as ``kaizen serve``: 9 cannot
listen, 10 no usable tokens, 11 the ``mcp`` extra is not installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from kaizen.cli._logs import FORMATS, logging_to_stderr
from kaizen.cli.serve import EXIT_NO_EXTRA, StartFailed, configure, port_number

__all__ = ["register"]

_MISSING_EXTRA = "kaizen mcp needs its extra: pip install 'kaizen-dataflow[mcp]'"
_LEVELS = ("debug", "info", "warning", "error")
#: The streamable HTTP endpoint's path.
PATH = "/mcp"


def register(subparsers: Any) -> None:
    """Add the ``mcp`` command to the ``kaizen`` parser's subcommands."""
    parser = subparsers.add_parser(
        "mcp",
        help="serve approvals and sessions to MCP clients (stdio or HTTP)",
        description=(
            "An MCP server with the tools request_approval, get_approval, "
            "list_pending_approvals, session_create, session_get, session_update and the "
            "resources approval://{id}, session://{id}. Over stdio (the default: an MCP "
            "client starts it) it acts for --user; with --http each request's bearer token "
            "(kaizen tokens add) says who calls, at http://HOST:PORT/mcp."
        ),
    )
    parser.add_argument("--user", metavar="ID", help="stdio: the user every call acts for")
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP")
    parser.add_argument(
        "--host", default="127.0.0.1", help="--http: interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=port_number, default=8765, help="--http: TCP port (default: %(default)s)"
    )
    parser.add_argument(
        "--tokens", metavar="FILE", help="--http: token file (written by: kaizen tokens add)"
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        metavar="HOST",
        dest="allowed_hosts",
        help="--http: a Host name requests may be addressed to (repeatable; default: the "
        "bind address)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="log lines on stderr as text or JSON (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=_LEVELS,
        default="info",
        help="the least severe log lines written (default: %(default)s)",
    )
    parser.set_defaults(handler=_mcp)


def _check_options(args: argparse.Namespace) -> None:
    if args.http and args.user is not None:
        raise StartFailed(2, "--user is for stdio; over --http the bearer token says who calls")
    if not args.http and not args.user:
        raise StartFailed(2, "stdio needs --user ID: the user every call acts for")
    if args.user is not None:
        from kaizen.governance.models import check_id

        try:
            check_id("--user", args.user)
        except ValueError as exc:
            raise StartFailed(2, str(exc)) from exc


async def _mcp(args: argparse.Namespace) -> int:
    with logging_to_stderr(args.log_format, getattr(logging, args.log_level.upper())):
        try:
            _check_options(args)
            try:
                from kaizen.mcp import create_server
            except ImportError as exc:
                raise StartFailed(EXIT_NO_EXTRA, _MISSING_EXTRA) from exc
            if args.http:
                return await _http(args, create_server)
            return await _stdio(args, create_server)
        except StartFailed as exc:
            sys.stderr.write(f"kaizen: error: {exc}\n")
            return exc.code


async def _stdio(args: argparse.Namespace, create_server: Any) -> int:
    from kaizen.access import Viewer
    from kaizen.service import Kaizen

    async with Kaizen.open(args.database_url) as kaizen:
        server = create_server(kaizen, user=Viewer(args.user))
        await server.run_stdio_async()
    return 0


async def _http(args: argparse.Namespace, create_server: Any) -> int:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from kaizen.service import Kaizen

    tokens, hosts, sock = configure(args)
    authority = f"[{args.host}]" if ":" in args.host else args.host
    security = TransportSecuritySettings(
        allowed_hosts=[p for h in hosts for p in (h, f"{h}:*")],
        allowed_origins=[f"http://{h}:*" for h in hosts] + [f"https://{h}:*" for h in hosts],
    )
    with sock:
        async with Kaizen.open(args.database_url) as kaizen:
            server = create_server(
                kaizen, tokens=tokens, issuer_url=f"http://{authority}:{args.port}"
            )
            app = server.streamable_http_app(
                streamable_http_path=PATH, transport_security=security, host=args.host
            )
            config = uvicorn.Config(
                app, lifespan="on", log_level=args.log_level, log_config=None, access_log=False
            )
            await uvicorn.Server(config).serve(sockets=[sock])
    return 0
