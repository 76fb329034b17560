"""Database URLs: parsing, dialect selection and credential masking."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

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
    #: Every ``(host, port)`` of a multi-host URL (libpq's ``h1:p1,h2:p2``), in order;
    #: ``host``/``port`` are the first.
    hosts: tuple[tuple[str | None, int | None], ...] = ()

    def __post_init__(self) -> None:
        if not self.hosts and self.family != "sqlite":
            object.__setattr__(self, "hosts", ((self.host, self.port),))

    @property
    def masked(self) -> str:
        """The URL with the password replaced by ``***``."""
        scheme = self.family + (f"+{self.driver}" if self.driver else "")
        if self.family == "sqlite":
            return f"{scheme}:///{self.database or ':memory:'}"
        auth = ""
        if self.username:
            auth = self.username + (":***" if self.password else "") + "@"
        hosts = ",".join(_host_text(h) + (f":{p}" if p else "") for h, p in self.hosts)
        return f"{scheme}://{auth}{hosts}/{self.database or ''}"

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
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    if "," in netloc.rpartition("@")[2]:
        if family != "postgresql":
            raise ConfigurationError(
                f"a {family} URL names one server (a cluster: one URL per node)"
            )
        return _multi_host(url, driver or None)
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


def _host_text(host: str | None) -> str:
    return f"[{host}]" if host and ":" in host else (host or "")


def _multi_host(url: str, driver: str | None) -> DatabaseURL:
    """libpq's multi-host form: ``postgresql://user:pw@h1:p1,h2:p2/db?query``."""
    rest = url.split("://", 1)[1]
    netloc, _, tail = rest.partition("/")
    if "?" in netloc:
        netloc, _, query_text = netloc.partition("?")
        tail = "?" + query_text
    userinfo, _, hostlist = netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    database, _, query_text = tail.partition("?")
    hosts = tuple(_host_port(part) for part in hostlist.split(","))
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_text, keep_blank_values=True):
        query[key] = value
    return DatabaseURL(
        family="postgresql",
        driver=driver,
        host=hosts[0][0],
        port=hosts[0][1],
        username=unquote(user) or None,
        password=unquote(password) if has_password else None,
        database=unquote(database) or None,
        query=query,
        hosts=hosts,
    )


def _host_port(part: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` of a multi-host list."""
    if part.startswith("["):
        host, _, after = part[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else after
    else:
        host, _, port_text = part.partition(":")
    if not host:
        raise ConfigurationError("an empty host in the database URL for postgresql")
    if not port_text:
        return unquote(host), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"bad port {port_text!r} in the database URL for postgresql")
    return unquote(host), int(port_text)
