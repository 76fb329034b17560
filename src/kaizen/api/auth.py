"""Bearer-token authentication: tokens are stored as sha256 hashes, each with a user and a role.

Tokens come from a token file (:mod:`kaizen.api.tokens_file`: the format
``kaizen tokens add`` writes, or the legacy ``{"<sha256 hex of token>": "user-id"}``
JSON/TOML object), or from the ``KAIZEN_API_TOKENS`` environment variable holding
``user=token`` pairs (``user:admin=token`` for the admin role) separated by commas or
whitespace, hashed as they are read (:func:`tokens_from_env`). Print the hash of a
token with ``python -m kaizen.api`` (reads the token from stdin, so it stays out of
the shell history).
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from dataflow.errors import ConfigurationError

__all__ = [
    "ADMIN",
    "ENV_VAR",
    "ROLES",
    "USER",
    "Identity",
    "TokenConfigError",
    "TokenSource",
    "TokenStore",
    "hash_token",
    "load_token_file",
    "tokens_from_env",
]

#: Environment variable of ``user=token`` pairs.
ENV_VAR = "KAIZEN_API_TOKENS"
_HEX64 = re.compile(r"[0-9a-f]{64}")


#: The role that may read and decide everything.
ADMIN = "admin"
#: The default role: sees what is routed to the user or requested by them.
USER = "user"
#: Every role a token may have.
ROLES = (USER, ADMIN)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token authenticates: the user id and the token's role."""

    user: str
    role: str = USER

    @property
    def is_admin(self) -> bool:
        """Whether the role may read everything."""
        return self.role == ADMIN


@runtime_checkable
class TokenSource(Protocol):
    """Anything that tells who a bearer token authenticates (what the API asks)."""

    def identify(self, token: str) -> Identity | None:
        """The identity ``token`` authenticates, or None (unknown or expired)."""
        ...  # pragma: no cover


class TokenConfigError(ConfigurationError, ValueError):
    """The token configuration (file or environment) is unusable."""


def hash_token(token: str) -> str:
    """The sha256 hex digest of ``token`` (what token files store).

    Raises:
        TokenConfigError: ``token`` is empty or has surrounding whitespace.
    """
    if not token or token != token.strip():
        raise TokenConfigError("a token must be non-empty, without surrounding whitespace")
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_user(user: object, where: str) -> str:
    """``user`` if it is a usable user id.

    Raises:
        TokenConfigError: Not a non-empty string of at most 255 characters without
            surrounding whitespace.
    """
    if not isinstance(user, str) or not user.strip() or len(user) > 255 or user != user.strip():
        raise TokenConfigError(
            f"{where}: user id must be a non-empty string of at most 255 chars, "
            "without surrounding whitespace"
        )
    return user


def check_role(role: object, where: str) -> str:
    """``role`` if it is one of :data:`ROLES`.

    Raises:
        TokenConfigError: Any other value.
    """
    if role not in ROLES:
        raise TokenConfigError(f"{where}: role must be one of {', '.join(ROLES)}")
    return str(role)


def check_hash(hexdigest: object, where: str) -> str:
    """``hexdigest`` in lower case if it is a sha256 hex digest (never echoed in errors).

    Raises:
        TokenConfigError: Anything else.
    """
    if not isinstance(hexdigest, str) or not _HEX64.fullmatch(hexdigest.lower()):
        raise TokenConfigError(f"{where}: token hashes must be sha256 hex digests (64 hex digits)")
    return hexdigest.lower()


#: One stored token: its hash (ASCII hex), who it authenticates, when it expires.
_Entry = tuple[bytes, Identity, datetime | None]


def _checked(entries: Iterable[tuple[object, Identity, datetime | None]]) -> tuple[_Entry, ...]:
    checked: list[_Entry] = []
    for digest, identity, expires_at in entries:
        if expires_at is not None and expires_at.utcoffset() is None:
            raise TokenConfigError("token expiry must be a timezone-aware datetime")
        checked.append((check_hash(digest, "token entry").encode("ascii"), identity, expires_at))
    return _unique(checked)


def _unique(entries: list[_Entry]) -> tuple[_Entry, ...]:
    """``entries``, refusing one token configured twice (it would authenticate either user)."""
    found: dict[bytes, Identity] = {}
    for digest, identity, _ in entries:
        other = found.setdefault(digest, identity)
        if other != identity:
            raise TokenConfigError(
                f"one token is configured twice (for {other.user!r} ({other.role}) and "
                f"{identity.user!r} ({identity.role})): "
                "every token must be unique"
            )
    return tuple(entries)


class TokenStore:
    """Hashed bearer tokens and the identity each one authenticates.

    Args:
        hashed: sha256 hex digest of a token -> user id (role ``user``, no expiry).

    Raises:
        TokenConfigError: A key is not a sha256 hex digest or a user id is empty.

    Example:
        >>> store = TokenStore({hash_token("s3cret"): "lead-456"})
        >>> store.user_for("s3cret")
        'lead-456'
    """

    def __init__(self, hashed: Mapping[str, str]) -> None:
        self._entries = _checked(
            (digest, Identity(check_user(user, "token entry")), None)
            for digest, user in hashed.items()
        )

    @classmethod
    def of(cls, entries: Iterable[tuple[str, Identity, datetime | None]]) -> TokenStore:
        """A store of ``(sha256 hex digest, identity, expires_at or None)`` entries.

        Raises:
            TokenConfigError: A digest is malformed, or an expiry is not timezone-aware.
        """
        store = cls({})
        store._entries = _checked(entries)
        return store

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<TokenStore of {len(self._entries)} token(s)>"

    def identify(self, token: str, *, now: datetime | None = None) -> Identity | None:
        """The identity ``token`` authenticates, or None (unknown or expired at ``now``).

        Every stored hash is compared in constant time, so timing reveals
        neither which entry matched nor how much of a hash did.

        Args:
            token: The bearer token as presented.
            now: The time to check expiry at (default: the current UTC time).
        """
        try:
            digest = hash_token(token).encode("ascii")
        except TokenConfigError:
            return None
        now = now or datetime.now(UTC)
        found: Identity | None = None
        for stored, identity, expires_at in self._entries:
            live = expires_at is None or expires_at > now
            if hmac.compare_digest(stored, digest) and live and found is None:
                found = identity
        return found

    def user_for(self, token: str) -> str | None:
        """The user ``token`` authenticates, or None (see :meth:`identify`)."""
        identity = self.identify(token)
        return identity.user if identity is not None else None

    @classmethod
    def merged(cls, stores: Iterable[TokenStore]) -> TokenStore:
        """One store holding the entries of all ``stores``.

        Raises:
            TokenConfigError: One token is in several of them.
        """
        merged = cls({})
        merged._entries = _unique([e for s in stores for e in s._entries])
        return merged


def load_token_file(path: str | Path) -> TokenStore:
    """Read a token file once (either format; see :mod:`kaizen.api.tokens_file`).

    Raises:
        TokenConfigError: The file is missing, unparsable or malformed.
    """
    from kaizen.api.tokens_file import read_store

    return read_store(path)


def tokens_from_env(value: str) -> TokenStore:
    """Parse ``user=token`` pairs (comma or whitespace separated), hashing each token.

    A trailing ``:admin`` or ``:user`` on the user part is the token's role
    (``alice:admin=token``); any other colon stays part of the user id.

    Raises:
        TokenConfigError: A pair without ``=``, an empty user or token.
    """
    entries: list[tuple[str, Identity, datetime | None]] = []
    for pair in re.split(r"[,\s]+", value.strip()):
        if not pair:
            continue
        user, sep, token = pair.partition("=")
        if not sep:
            raise TokenConfigError(f"{ENV_VAR}: expected user=token or user:role=token pairs")
        role = USER
        name, colon, suffix = user.rpartition(":")
        if colon and suffix in ROLES:
            user, role = name, suffix
        entries.append((hash_token(token), Identity(check_user(user, ENV_VAR), role), None))
    return TokenStore.of(entries)


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="python -m kaizen.api",
        description=(
            "Print the sha256 hex digest of a bearer token read from stdin (one line), as "
            "legacy token files store it. Reading stdin keeps the token out of the shell "
            "history; on a terminal the input is not echoed. To create, list and revoke "
            "tokens use: kaizen tokens add|list|revoke."
        ),
        epilog="example: python -m kaizen.api < token.txt",
    )


def main(argv: Sequence[str] = ()) -> int:
    """Print the sha256 hex digest of the token read from stdin (``--help``: usage).

    Args:
        argv: The command-line arguments (without the program name).

    Returns:
        The exit code: 0, or 2 for an empty token.
    """
    _parser().parse_args(list(argv))
    if sys.stdin.isatty():
        token = getpass.getpass("token to hash (not echoed): ", stream=sys.stderr)
    else:
        token = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_token(token))
    except TokenConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0
