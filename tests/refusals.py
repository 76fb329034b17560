"""URLs every database error case of the tests is made of, on loopback only: a server
refusing the database or the credentials (the test servers), a closed port, a port
that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from dataflow.urls import parse_url

__all__ = ["SECRET", "closed_port", "refused_url", "refusals", "silent_port"]

SECRET = "s3cret-never-shown"


def refused_url(db_url: str, what: str) -> str:
    """``db_url`` (a PostgreSQL or MySQL test database) with what its server refuses:
    ``database`` (one that does not exist), ``user`` (one that does not exist, with a
    password) or ``password`` (the test user with a wrong one)."""
    url = parse_url(db_url)
    user, database = url.username or "", url.database or ""
    if what == "database":
        database = "no_such_database_x"
    elif what == "user":
        user = "no_such_user_x"
    elif what != "password":
        raise ValueError(what)
    auth = user if what == "database" else f"{user}:{SECRET}"
    return f"{url.family}://{auth}@{url.host}:{url.port}/{database}"


def refusals(family: str) -> list[str]:
    """What the test server of ``family`` refuses: PostgreSQL trusts loopback
    connections, so a wrong password is no error there."""
    return ["database", "user"] if family == "postgresql" else ["database", "user", "password"]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that completes TCP handshakes and then never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]
