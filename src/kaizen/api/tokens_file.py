"""Token files: the format ``kaizen tokens`` writes, and reading it (reload on change).

The format (JSON; ``created_at``/``expires_at`` are ISO-8601 with a UTC offset)::

    {"version": 1, "tokens": [{"id": "tok_3f9c0a1b2c3d4e5f", "user": "alice",
      "role": "user", "hash": "<sha256 hex of the token>",
      "created_at": "2026-01-01T00:00:00+00:00", "expires_at": null}]}

The legacy ``{"<sha256 hex of token>": "user-id"}`` object (JSON, or TOML by the
``.toml`` suffix) is still read: role ``user``, no expiry, an id derived from the
hash, the file's modification time as ``created_at``. The first write
(:mod:`kaizen.api.token_admin`) converts it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from kaizen.api.auth import (
    USER,
    Identity,
    TokenConfigError,
    TokenStore,
    check_hash,
    check_role,
    check_user,
)

__all__ = ["FORMAT_VERSION", "TokenFile", "TokenRecord", "parse_tokens", "read_store"]

logger = logging.getLogger("kaizen.api")

#: The ``version`` of the token file format this module writes.
FORMAT_VERSION = 1
_FIELDS = ("id", "user", "role", "hash", "created_at", "expires_at")
_REQUIRED = ("id", "user", "hash", "created_at")
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: What identifies one version of a file: device, inode, size, mtime and ctime in ns.
_Signature = tuple[int, int, int, int, int]
#: Longer than any file system's mtime granularity (FAT: 2 s).
_RACY_NS = 2_000_000_000


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One stored token: everything but the token itself (only its hash is kept)."""

    id: str
    user: str
    role: str
    hash: str = field(repr=False)
    created_at: datetime
    expires_at: datetime | None = None

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the token no longer authenticates at ``now`` (default: the current time)."""
        return self.expires_at is not None and self.expires_at <= (now or datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        """The record as the token file stores it."""
        return {
            "id": self.id,
            "user": self.user,
            "role": self.role,
            "hash": self.hash,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at) if self.expires_at else None,
        }

    def describe(self, now: datetime | None = None) -> dict[str, Any]:
        """What may be shown about the token: everything but its hash."""
        return {
            "id": self.id,
            "user": self.user,
            "role": self.role,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "expired": self.expired(now),
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _time(value: object, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise TokenConfigError(f"{where}: not an ISO-8601 datetime") from exc
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise TokenConfigError(f"{where}: expected an ISO-8601 datetime with a UTC offset")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise TokenConfigError(f"{where}: the datetime is out of range") from exc


def _record(item: object, where: str) -> TokenRecord:
    if not isinstance(item, dict):
        raise TokenConfigError(f"{where}: expected an object")
    if set(item) - set(_FIELDS):
        raise TokenConfigError(f"{where}: unknown field(s); allowed: {', '.join(_FIELDS)}")
    missing = [name for name in _REQUIRED if name not in item]
    if missing:
        raise TokenConfigError(f"{where}: missing field(s) {', '.join(missing)}")
    if not isinstance(item["id"], str) or not _ID.fullmatch(item["id"]):
        raise TokenConfigError(f"{where}: id must be 1-64 letters, digits, '_' or '-'")
    expires = item.get("expires_at")
    return TokenRecord(
        id=item["id"],
        user=check_user(item["user"], where),
        role=check_role(item.get("role", USER), where),
        hash=check_hash(item["hash"], where),
        created_at=_time(item["created_at"], f"{where}: created_at"),
        expires_at=None if expires is None else _time(expires, f"{where}: expires_at"),
    )


def _legacy(data: dict[str, Any], where: str, created_at: datetime) -> list[TokenRecord]:
    records = []
    for digest, user in data.items():
        digest = check_hash(digest, where)
        # Stable across reads (so it can be revoked by id), and reveals nothing of the hash.
        token_id = "tok_" + hashlib.sha256(f"legacy:{digest}".encode()).hexdigest()[:16]
        records.append(TokenRecord(token_id, check_user(user, where), USER, digest, created_at))
    return records


def parse_tokens(data: object, where: str, *, legacy_created_at: datetime) -> list[TokenRecord]:
    """The records of a parsed token file, in either format.

    Args:
        data: The parsed JSON or TOML document.
        where: What to name in error messages (the file).
        legacy_created_at: ``created_at`` of the records of a legacy file.

    Raises:
        TokenConfigError: ``data`` is not a valid token file (the message names no hash).
    """
    if not isinstance(data, dict):
        raise TokenConfigError(f"{where} must hold a JSON object")
    if "version" not in data and "tokens" not in data:
        return _legacy(data, where, legacy_created_at)
    version = data.get("version")
    if isinstance(version, bool) or version != FORMAT_VERSION:
        raise TokenConfigError(f"{where}: unsupported version (this kaizen reads {FORMAT_VERSION})")
    if set(data) != {"version", "tokens"} or not isinstance(data["tokens"], list):
        raise TokenConfigError(f"{where}: expected exactly a version and a list of tokens")
    records = [_record(item, f"{where}: tokens[{i}]") for i, item in enumerate(data["tokens"])]
    ids, hashes = set(), set()
    for record in records:
        if record.id in ids or record.hash in hashes:
            raise TokenConfigError(f"{where}: token {record.id!r} is stored twice")
        ids.add(record.id)
        hashes.add(record.hash)
    return records


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Snapshot(NamedTuple):
    signature: _Signature
    digest: bytes  # of the file's bytes: tells a real change from a touch
    records: list[TokenRecord]


def read_snapshot(path: Path) -> _Snapshot:
    where = f"token file {str(path)!r}"
    try:
        with path.open("rb") as file:
            st = os.fstat(file.fileno())
            raw = file.read()
    except OSError as exc:
        raise TokenConfigError(f"cannot read {where}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise TokenConfigError(f"cannot read {where}: {exc}") from exc
    created = datetime.fromtimestamp(st.st_mtime, UTC).replace(microsecond=0)
    records = parse_tokens(data, where, legacy_created_at=created)
    return _Snapshot(_signature(st), hashlib.sha256(raw).digest(), records)


def _racy(signature: _Signature | None) -> bool:
    """Whether the file may change again unnoticed: same size within one mtime tick."""
    return signature is not None and time.time_ns() - signature[3] < _RACY_NS


def _store_of(records: Iterable[TokenRecord]) -> TokenStore:
    return TokenStore.of((r.hash, Identity(r.user, r.role), r.expires_at) for r in records)


def read_store(path: str | Path) -> TokenStore:
    """The tokens of the file at ``path``, read once.

    Raises:
        TokenConfigError: The file is missing, unparsable or malformed.
    """
    return _store_of(read_snapshot(Path(path)).records)


class TokenFile:
    """A token file as a token source that reloads the file when it changes.

    Every :meth:`identify` stats the file (device, inode, size, mtime, ctime); a
    change reloads it, so a revoked token is refused from the next request on (a
    file modified in the last 2 s is read again on each call, as a same-size edit
    within one coarse mtime tick would not show in the stat). A deleted file
    authenticates nobody until it is back. If the changed file cannot be read or
    is malformed, the tokens loaded last stay in force (a hand-editing slip must
    not lock everyone out), a warning naming the problem (never a token or hash)
    is logged once, and the file is read again as soon as it changes again.

    Args:
        path: The token file.
        extra: Static tokens served alongside the file's (e.g. from the environment).

    Raises:
        TokenConfigError: The file cannot be read or is malformed now.
    """

    def __init__(self, path: str | Path, *, extra: TokenStore | None = None) -> None:
        self._path = Path(path)
        self._extra = extra if extra is not None else TokenStore({})
        self._lock = threading.Lock()
        self._digest = b""
        self._store = self._extra
        self._signature: _Signature | None = None
        self._recent = False  # modified too recently for the stat to show every change
        self._load(read_snapshot(self._path))

    @property
    def path(self) -> Path:
        """The token file."""
        return self._path

    def __repr__(self) -> str:
        return f"<TokenFile {str(self._path)!r}>"

    def __len__(self) -> int:
        return len(self._current())

    def _load(self, snapshot: _Snapshot) -> bool:
        changed = snapshot.digest != self._digest
        if changed:
            self._store = TokenStore.merged([_store_of(snapshot.records), self._extra])
            self._digest = snapshot.digest
        self._signature = snapshot.signature
        self._recent = _racy(snapshot.signature)
        return changed

    def _current(self) -> TokenStore:
        try:
            signature: _Signature | None = _signature(os.stat(self._path))
        except OSError:
            signature = None
        if signature == self._signature and not self._recent:
            return self._store
        with self._lock:
            if signature != self._signature or self._recent:
                self._reload(signature)
            return self._store

    def _reload(self, signature: _Signature | None) -> None:
        if signature is None and not self._path.exists():
            # Deleted (or moved away): revoking every file token must be this easy.
            if self._digest:
                logger.warning(
                    "token file %r is gone: its tokens are refused until it is back",
                    str(self._path),
                )
            self._store, self._digest = self._extra, b""
            self._signature, self._recent = None, False
            return
        try:
            snapshot = read_snapshot(self._path)
        except TokenConfigError as exc:
            if signature != self._signature:
                logger.warning("%s; keeping the %d token(s) loaded before", exc, len(self._store))
            self._signature, self._recent = signature, _racy(signature)
            return
        if self._load(snapshot):
            count = len(snapshot.records)
            logger.info("reloaded token file %r: %d token(s)", str(self._path), count)

    def identify(self, token: str) -> Identity | None:
        """The identity ``token`` authenticates now, or None (reloads a changed file)."""
        return self._current().identify(token)

    def user_for(self, token: str) -> str | None:
        """The user ``token`` authenticates now, or None."""
        identity = self.identify(token)
        return identity.user if identity is not None else None
