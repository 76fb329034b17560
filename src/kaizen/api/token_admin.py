"""Changing token files: add, list and revoke tokens, as atomic locked rewrites.

Writes go to a temporary file in the same directory (fsynced, mode 0600) that
replaces the file, under an advisory lock on ``<file>.lock``, so concurrent
``kaizen tokens add`` lose nothing and readers never see a partial file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from dataflow.errors import NotFoundError, ValidationError
from kaizen.api.auth import USER, TokenConfigError, check_role, check_user, hash_token
from kaizen.api.tokens_file import FORMAT_VERSION, TokenRecord, read_snapshot

__all__ = ["add_token", "list_tokens", "revoke_tokens"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the advisory lock of ``path`` (``<path>.lock``, never deleted)."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TokenConfigError(f"cannot lock token file {str(path)!r}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _existing(path: Path) -> list[TokenRecord]:
    return read_snapshot(path).records if path.exists() else []


def _write(path: Path, records: Iterable[TokenRecord]) -> None:
    body = {"version": FORMAT_VERSION, "tokens": [r.to_json() for r in records]}
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write(json.dumps(body, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise TokenConfigError(f"cannot write token file {str(path)!r}: {exc.strerror}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _writable(path: str | Path) -> Path:
    file = Path(path)
    if file.suffix == ".toml":
        raise TokenConfigError(
            f"token file {str(file)!r}: kaizen tokens writes JSON; use a .json file"
        )
    return file


def add_token(
    path: str | Path,
    user: str,
    *,
    role: str = USER,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[str, TokenRecord]:
    """Create a random token for ``user`` and store its hash (creating the file if needed).

    Args:
        path: The token file (JSON).
        user: The user id the token authenticates.
        role: One of :data:`~kaizen.api.auth.ROLES`.
        expires_at: When the token stops authenticating (timezone-aware), or None.
        now: The creation time (default: the current UTC time).

    Returns:
        The token (shown once; only its hash is stored) and its record.

    Raises:
        ValidationError: A bad user, role or expiry.
        TokenConfigError: The file is a TOML file, malformed, or cannot be written.
    """
    now = now or datetime.now(UTC)
    try:
        check_user(user, "tokens add")
        check_role(role, "tokens add")
    except TokenConfigError as exc:
        raise ValidationError(str(exc)) from exc
    if expires_at is not None:
        if expires_at.utcoffset() is None:
            raise ValidationError("tokens add: expires_at must be timezone-aware")
        # The file keeps whole seconds; check what is kept.
        expires_at = expires_at.astimezone(UTC).replace(microsecond=0)
        if expires_at <= now:
            raise ValidationError("tokens add: expires_at must be in the future")
    file = _writable(path)
    token = secrets.token_urlsafe(32)
    record = TokenRecord(
        id=f"tok_{secrets.token_hex(8)}",
        user=user,
        role=role,
        hash=hash_token(token),
        created_at=now.astimezone(UTC).replace(microsecond=0),
        expires_at=expires_at,
    )
    with _locked(file):
        _write(file, [*_existing(file), record])
    return token, record


def list_tokens(path: str | Path) -> list[TokenRecord]:
    """The records of the token file (none when it does not exist yet).

    Raises:
        TokenConfigError: The file is unreadable or malformed.
    """
    return _existing(Path(path))


def revoke_tokens(path: str | Path, user_or_id: str) -> list[TokenRecord]:
    """Remove the token with id ``user_or_id``, else every token of that user.

    Returns:
        The removed records.

    Raises:
        NotFoundError: No token has that id or belongs to that user.
        TokenConfigError: The file is malformed or cannot be written.
    """
    file = _writable(path)
    with _locked(file):
        records = _existing(file)
        gone = [r for r in records if r.id == user_or_id] or [
            r for r in records if r.user == user_or_id
        ]
        if not gone:
            raise NotFoundError("no token has that id or belongs to that user (kaizen tokens list)")
        gone_ids = {r.id for r in gone}
        _write(file, [r for r in records if r.id not in gone_ids])
    return gone
