"""The HTTP approvals API served by ``kaizen serve``, and the approver inbox page.

``create_app`` is imported on first use, so the token helpers (and ``kaizen tokens``)
work without the ``server`` extra.

Example:
    >>> from kaizen.api import create_app, hash_token
    >>> app = create_app("sqlite:///kaizen.db", tokens={hash_token("s3cret"): "lead-456"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaizen.api.auth import (
    ADMIN,
    Identity,
    TokenConfigError,
    TokenSource,
    TokenStore,
    hash_token,
)
from kaizen.api.tokens_file import TokenFile

if TYPE_CHECKING:
    from kaizen.api.app import create_app

__all__ = [
    "ADMIN",
    "Identity",
    "TokenConfigError",
    "TokenFile",
    "TokenSource",
    "TokenStore",
    "create_app",
    "hash_token",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from kaizen.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
