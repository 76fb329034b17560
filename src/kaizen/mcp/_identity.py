"""Who calls a tool: the ``--user`` of a stdio server, the bearer token's user over HTTP.

Over streamable HTTP every request carries a bearer token checked against the same
token store as ``kaizen serve`` (a token file reloaded when it changes, and/or
``KAIZEN_API_TOKENS``); the SDK's bearer middleware answers 401 to a request without
a valid one, so a tool never runs for nobody.
"""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from kaizen.access import Viewer
from kaizen.api.auth import ADMIN, TokenSource

__all__ = ["TokenVerifier", "caller"]


class TokenVerifier:
    """The MCP SDK's token verifier over one of our token sources.

    Args:
        tokens: What tells who a token authenticates (``kaizen serve``'s tokens).
    """

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access the token grants, or None (unknown, expired or revoked)."""
        identity = self._tokens.identify(token)
        if identity is None:
            return None
        # subject: the principal the SDK binds an MCP session to, so another user's
        # token cannot continue it.
        return AccessToken(
            token="",  # never kept: the hash in the store is all we need
            client_id=identity.user,
            subject=identity.user,
            scopes=[identity.role],
        )


def caller(fixed: Viewer | None) -> Viewer:
    """The viewer a tool call acts for: ``fixed`` (a stdio server's ``--user``), else
    the user of the request's bearer token.

    Raises:
        PermissionError: Neither is there (cannot happen behind the bearer middleware).
    """
    if fixed is not None:
        return fixed
    token = get_access_token()
    if token is None:  # pragma: no cover - the bearer middleware refused the request first
        raise PermissionError("no authenticated user")
    return Viewer(token.client_id, admin=ADMIN in token.scopes)
