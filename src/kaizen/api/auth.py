"""Bearer-token authentication: tokens are stored as sha256 hashes mapped to user ids.

Configure tokens with a JSON or TOML file of ``{"<sha256 hex of token>": "user-id"}``
(:func:`load_token_file`), or with the ``KAIZEN_API_TOKENS`` environment variable
holding ``user=token`` pairs separated by commas or whitespace, hashed as they are
read (:func:`tokens_from_env`). Print the hash of a token with
``python -m kaizen.api`` (reads the token from stdin, so it stays out of the
shell history).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

from dataflow.errors import ConfigurationError

__all__ = [
    "ENV_VAR",
    "TokenConfigError",
    "TokenStore",
    "hash_token",
    "load_token_file",
    "tokens_from_env",
]

#: Environment variable of ``user=token`` pairs.
ENV_VAR = "KAIZEN_API_TOKENS"
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


def _check_user(user: object, where: str) -> str:
    if not isinstance(user, str) or not user.strip() or len(user) > 255:
        raise TokenConfigError(f"{where}: user id must be a non-empty string of at most 255 chars")
    return user


class TokenStore:
    """Hashed bearer tokens and the user each one authenticates.

    Args:
        hashed: sha256 hex digest of a token -> user id.

    Raises:
        TokenConfigError: A key is not a sha256 hex digest or a user id is empty.

    Example:
        >>> store = TokenStore({hash_token("s3cret"): "lead-456"})
        >>> store.user_for("s3cret")
        'lead-456'
    """

    def __init__(self, hashed: Mapping[str, str]) -> None:
        entries: list[tuple[bytes, str]] = []
        for digest, user in hashed.items():
            if not isinstance(digest, str) or not _HEX64.fullmatch(digest.lower()):
                raise TokenConfigError("token keys must be sha256 hex digests (64 hex digits)")
            entries.append((digest.lower().encode("ascii"), _check_user(user, "token entry")))
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def user_for(self, token: str) -> str | None:
        """The user ``token`` authenticates, or None.

        Every stored hash is compared in constant time, so timing reveals
        neither which entry matched nor how much of a hash did.
        """
        try:
            digest = hash_token(token).encode("ascii")
        except TokenConfigError:
            return None
        found: str | None = None
        for stored, user in self._entries:
            if hmac.compare_digest(stored, digest):
                found = user
        return found

    @classmethod
    def merged(cls, stores: Iterable[TokenStore]) -> TokenStore:
        """One store holding the entries of all ``stores``."""
        merged = cls({})
        merged._entries = tuple(e for s in stores for e in s._entries)
        return merged


def load_token_file(path: str | Path) -> TokenStore:
    """Read a JSON (or, by the ``.toml`` suffix, TOML) file of ``{hash: user}``.

    Raises:
        TokenConfigError: The file is missing, unparsable or malformed.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise TokenConfigError(f"cannot read token file {str(file)!r}: {exc}") from exc
    if not isinstance(data, dict):
        raise TokenConfigError(f"token file {str(file)!r} must hold an object of hash -> user id")
    return TokenStore(data)


def tokens_from_env(value: str) -> TokenStore:
    """Parse ``user=token`` pairs (comma or whitespace separated), hashing each token.

    Raises:
        TokenConfigError: A pair without ``=``, an empty user or token.
    """
    hashed: dict[str, str] = {}
    for pair in re.split(r"[,\s]+", value.strip()):
        if not pair:
            continue
        user, sep, token = pair.partition("=")
        if not sep:
            raise TokenConfigError(f"{ENV_VAR}: expected user=token pairs")
        hashed[hash_token(token)] = _check_user(user, ENV_VAR)
    return TokenStore(hashed)


def main() -> int:
    """Print the sha256 hex digest of the token read from stdin."""
    token = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_token(token))
    except TokenConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0
