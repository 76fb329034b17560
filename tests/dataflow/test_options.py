"""Connection options: URL query or keyword, checked up front, honoured by every dialect."""

from __future__ import annotations

import pytest
from df_support import dialect_of

from dataflow import ConfigurationError, ConnectionLostError, DataFlow

MEMORY = "sqlite:///:memory:"
PG = "postgresql://u:pw@127.0.0.1:1/x"
MY = "mysql://u:pw@127.0.0.1:1/x"


def test_defaults() -> None:
    for url in (MEMORY, PG, MY):
        d = DataFlow(url).dialect
        assert (d.connect_timeout, d.pool_timeout, d.command_timeout) == (10.0, 30.0, None)
    sqlite = DataFlow(MEMORY).dialect
    assert sqlite.options["busy_timeout"] == 5.0 and sqlite.options["synchronous"] == "full"
    assert DataFlow(PG).dialect.options["pool_size"] == 10


@pytest.mark.parametrize("url", [MEMORY, PG, MY])
def test_options_from_the_url_and_keywords_which_win(url: str) -> None:
    sep = "?" if "?" not in url else "&"
    d = DataFlow(f"{url}{sep}connect_timeout=2.5&pool_timeout=4&command_timeout=1.5").dialect
    assert (d.connect_timeout, d.pool_timeout, d.command_timeout) == (2.5, 4.0, 1.5)
    d = DataFlow(f"{url}{sep}command_timeout=1.5", command_timeout=3, pool_size=3).dialect
    assert d.command_timeout == 3.0 and d.options["pool_size"] == 3
    for off in ("0", "off", "none"):
        assert DataFlow(f"{url}{sep}command_timeout={off}").dialect.command_timeout is None


@pytest.mark.parametrize(
    ("url", "options", "named"),
    [
        (f"{PG}?connect_timeout=soon", {}, "connect_timeout"),
        (PG, {"connect_timeout": -1}, "connect_timeout"),
        (PG, {"pool_timeout": 0}, "pool_timeout"),
        (PG, {"command_timeout": float("nan")}, "command_timeout"),
        (PG, {"connect_timeout": True}, "connect_timeout"),
        (PG, {"pool_size": 0}, "pool_size"),
        (f"{PG}?pool_size=ten", {}, "pool_size"),
        (PG, {"pool_size": 2.5}, "pool_size"),
        (f"{PG}?sslmode=sometimes", {}, "sslmode"),
        (MY, {"ssl_mode": "preferred"}, "preferred"),
        (MY, {"ssl_ca": "/etc/hostname"}, "need ssl_mode"),
        (MY, {"ssl_mode": "verify_ca", "ssl_ca": "/nonexistent/ca.pem"}, "TLS files"),
        (f"{MEMORY}?synchronous=maybe", {}, "synchronous"),
        (MEMORY, {"busy_timeout": -1}, "busy_timeout"),
        (PG, {"connect_timeout": 10**9}, "longer than a year"),
        (f"{PG}?typo_timeout=1", {}, "typo_timeout"),
        (f"{MEMORY}?sslmode=require", {}, "sslmode"),
        (MY, {"statement_cache_size": 5}, "statement_cache_size"),
    ],
)
def test_bad_options_name_the_option_never_the_password(
    url: str, options: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        DataFlow(url, **options)
    assert named in str(info.value) and "pw" not in str(info.value)


def test_unknown_options_list_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"known: .*command_timeout"):
        DataFlow(f"{PG}?timeout=3")


def test_postgresql_tls_settings_reach_the_driver_and_the_password_does_not() -> None:
    d = DataFlow(f"{PG}?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem").dialect
    assert "sslmode=verify-full" in d._dsn and "sslrootcert=%2Fetc%2Fssl%2Fca.pem" in d._dsn
    assert "pw" not in d._dsn and "u@127.0.0.1:1/x" in d._dsn
    assert "sslmode" not in DataFlow(PG).dialect._dsn  # asyncpg's own default: prefer


async def test_synchronous_sets_the_pragma(tmp_path: object) -> None:
    for value, code in (("full", 2), ("normal", 1), ("off", 0)):
        async with DataFlow(f"sqlite:///{tmp_path}/s-{value}.db?synchronous={value}") as db:
            backend = await db._backend()
            conn = await backend.pool.get()
            try:
                assert conn.raw.execute("PRAGMA synchronous").fetchone()[0] == code
            finally:
                backend.pool.put(conn, broken=False)


@pytest.mark.parametrize("db_url", ["postgresql", "mysql"], indirect=True)
async def test_tls_required_by_the_client_but_not_offered_is_an_error_of_ours(
    db_url: str,
) -> None:
    # The shared test servers run without TLS: demanding it must fail, as our error.
    option = {"postgresql": "sslmode=require", "mysql": "ssl_mode=required"}[dialect_of(db_url)]
    async with DataFlow(f"{db_url}?{option}&connect_timeout=5") as db:
        with pytest.raises(ConnectionLostError):
            await db.ping()
    async with DataFlow(db_url) as db:  # and without it, the same server is fine
        await db.ping()
