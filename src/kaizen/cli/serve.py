"""``kaizen serve``: the approvals API and the approver inbox on uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kaizen.api.auth import TokenStore

__all__ = ["register"]

#: Environment variable of ``user=token`` pairs (same as ``kaizen.api.auth.ENV_VAR``).
ENV_VAR = "KAIZEN_API_TOKENS"
#: Environment variable naming a token file (used when ``--tokens`` is not given).
TOKENS_FILE_VAR = "KAIZEN_API_TOKENS_FILE"
_MISSING_EXTRA = "the server needs its extra: pip install 'kaizen-dataflow[server]'"


def register(subparsers: Any) -> None:
    """Add the ``serve`` command to the ``kaizen`` parser's subcommands."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the approvals API and the approver inbox",
        description=(
            "Serve the HTTP approvals API (/api/...), its OpenAPI document (/openapi.json) "
            f"and the approver inbox (/). Tokens come from --tokens FILE, ${TOKENS_FILE_VAR} "
            f"or ${ENV_VAR} (user=token pairs); files map sha256 hex digests of tokens to "
            "user ids (print one with: python -m kaizen.api < token.txt)."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--tokens", metavar="FILE", help="JSON or TOML file of {sha256(token): user}"
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="public URL of this server, used in approve/reject links (default: as requested)",
    )
    parser.set_defaults(handler=_serve)


def load_tokens(path: str | None) -> TokenStore:
    """The token store from ``path``, the token-file variable and/or ``KAIZEN_API_TOKENS``.

    Raises:
        TokenConfigError: A source is malformed, or no token is configured at all.
    """
    from kaizen.api.auth import TokenConfigError, TokenStore, load_token_file, tokens_from_env

    stores = []
    path = path or os.environ.get(TOKENS_FILE_VAR)
    if path:
        stores.append(load_token_file(path))
    if os.environ.get(ENV_VAR):
        stores.append(tokens_from_env(os.environ[ENV_VAR]))
    store = TokenStore.merged(stores)
    if not len(store):
        raise TokenConfigError(
            f"no API tokens configured: use --tokens FILE, ${TOKENS_FILE_VAR} or ${ENV_VAR}"
        )
    return store


async def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from kaizen.api import TokenConfigError, create_app
    except ImportError as exc:
        sys.stderr.write(f"kaizen: error: {_MISSING_EXTRA} ({exc})\n")
        return 1
    from kaizen.service import Kaizen

    try:
        tokens = load_tokens(args.tokens)
    except TokenConfigError as exc:
        sys.stderr.write(f"kaizen: error: {exc}\n")
        return 2
    async with Kaizen.open(args.database_url, base_url=args.base_url) as kaizen:
        app = create_app(kaizen, tokens=tokens, base_url=args.base_url)
        config = uvicorn.Config(
            app, host=args.host, port=args.port, lifespan="on", log_level="info"
        )
        # uvicorn handles SIGINT/SIGTERM itself and returns after a graceful shutdown.
        await uvicorn.Server(config).serve()
    return 0
