"""Database URLs: parsing, dialect selection and credential masking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dataflow.errors import ConfigurationError

__all__ = ["DatabaseURL", "parse_url"]

_FAMILIES = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pgsql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. ``str()`` and ``repr()`` never show the password."""

    family: str
    driver: str | None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    @property
    def masked(self) -> str:
        """The URL with the password replaced by ``***``."""
        scheme = self.family + (f"+{self.driver}" if self.driver else "")
        if self.family == "sqlite":
            return f"{scheme}:///{self.database or ':memory:'}"
        auth = ""
        if self.username:
            auth = self.username + (":***" if self.password else "") + "@"
        host = self.host or ""
        port = f":{self.port}" if self.port else ""
        return f"{scheme}://{auth}{host}{port}/{self.database or ''}"

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r})"


def parse_url(url: str) -> DatabaseURL:
    """Parse a database URL.

    Args:
        url: ``sqlite:///rel.db``, ``sqlite:////abs.db``, ``sqlite:///:memory:``,
            ``postgresql://...``, ``postgres://...``, ``mysql://...``,
            ``mariadb://...``, optionally with ``+driver``.

    Returns:
        The parsed URL.

    Raises:
        ConfigurationError: The URL is malformed or names an unknown database.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = url.split(":", 1)[0] if "://" in url else ""
    family_name, _, driver = scheme.partition("+")
    family = _FAMILIES.get(family_name.lower())
    if family is None:
        raise ConfigurationError(
            "unsupported database URL scheme "
            f"{scheme or '(none)'!r}: use sqlite://, postgresql:// or mysql://"
        )
    try:
        parsed: Any = make_url(family + url[len(family_name) :])
        port = parsed.port
    except (ArgumentError, ValueError):
        # The parser's message repeats the URL, password included: do not chain it.
        raise ConfigurationError(f"malformed database URL for {family}") from None
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(f"port {port} out of range in the database URL for {family}")
    query = {k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}
    return DatabaseURL(
        family=family,
        driver=driver or None,
        host=parsed.host,
        port=port,
        username=parsed.username,
        password=parsed.password,
        database=parsed.database,
        query=query,
    )
