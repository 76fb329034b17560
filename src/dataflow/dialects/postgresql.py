"""PostgreSQL through asyncpg (installed with the ``postgres`` extra).

JSON is JSONB (sent and received as text, so no per-connection codec set-up);
timestamps are ``timestamptz``; JSON list membership uses a GIN index with
``@>``; waiters get LISTEN/NOTIFY on a dedicated connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as sa_pg

from dataflow.dialects.base import PooledDialect
from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    ValidationError,
)
from dataflow.models import Kind

try:
    import asyncpg
except ImportError:  # pragma: no cover - depends on the installed extras
    asyncpg = None

__all__ = ["PostgreSQLDialect"]

_SCHEMA_LOCK_KEY = 0x64617461666C6F77  # "dataflow"
_LOST_STATES = ("08", "57P")  # connection exceptions; admin shutdown / termination


class _Connection:
    """asyncpg connection with the core's positional-args surface."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        return list(await self.raw.fetch(sql, *args))

    async def execute(self, sql: str, args: Sequence[Any]) -> int:
        status = await self.raw.execute(sql, *args)
        tail = status.rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self.raw.executemany(sql, rows)

    async def begin(self) -> None:
        await self.raw.execute("BEGIN")

    async def commit(self) -> None:
        await self.raw.execute("COMMIT")

    async def rollback(self) -> None:
        await self.raw.execute("ROLLBACK")


def _is_lost(exc: BaseException) -> bool:
    if asyncpg is None:  # pragma: no cover
        return False
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_LOST_STATES)
    # InternalClientError: a connection terminated by the server right after a
    # simple-protocol statement (e.g. COMMIT) is left open in a failed state, and the
    # next statement is refused before anything is sent.
    return isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | ConnectionError
        | OSError
        | asyncio.TimeoutError,
    )


def _kill(conn: _Connection) -> None:
    # Aborts the socket; asyncpg then fails to schedule its callback on the closed
    # loop, which is harmless here.
    with contextlib.suppress(RuntimeError):
        conn.raw.terminate()


class PostgreSQLDialect(PooledDialect):
    """PostgreSQL: JSONB, timestamptz, GIN membership indexes, LISTEN/NOTIFY."""

    name = "postgresql"
    columns_sql = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = $1"
    )
    indexes_sql = (
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1"
    )
    native_membership_index = True
    supports_notify = True
    OPTIONS = frozenset({"pool_size", "connect_timeout", "statement_cache_size"})

    def __init__(self, url: Any, options: dict[str, Any]) -> None:
        super().__init__(url, options)
        if asyncpg is None:
            raise ConfigurationError(
                "PostgreSQL needs asyncpg: pip install 'kaizen-dataflow[postgres]'"
            )
        if url.driver not in (None, "asyncpg", "psycopg", "psycopg2"):
            raise ConfigurationError(
                f"unsupported PostgreSQL driver {url.driver!r}; asyncpg is used"
            )
        self.sa_dialect = sa_pg.asyncpg.dialect()  # type: ignore[no-untyped-call]
        self.cache_size = int(options.get("statement_cache_size", 512))

    # -- types -------------------------------------------------------------

    def column_type(self, kind: Kind, *, key: bool) -> Any:
        return {
            Kind.STR: sa.Text(),
            Kind.INT: sa.BigInteger(),
            Kind.FLOAT: sa.Double(),
            Kind.BOOL: sa.Boolean(),
            Kind.DATETIME: sa.DateTime(timezone=True),
            Kind.JSON: sa_pg.JSONB(),
        }[kind]

    def kind_of(self, db_type: str) -> Kind | None:
        return {
            "text": Kind.STR,
            "bigint": Kind.INT,
            "double precision": Kind.FLOAT,
            "boolean": Kind.BOOL,
            "timestamp with time zone": Kind.DATETIME,
            "jsonb": Kind.JSON,
        }.get(db_type)

    # -- errors ------------------------------------------------------------

    def classify(self, exc: BaseException) -> type[DataFlowError] | None:
        if _is_lost(exc):
            return ConnectionLostError
        if not isinstance(exc, asyncpg.PostgresError):
            return None
        state = getattr(exc, "sqlstate", "") or ""
        if state == "23505":
            return DuplicateKeyError
        if state.startswith("23"):
            return IntegrityError
        if state.startswith("22"):
            return ValidationError
        if state in ("40001", "40P01", "55P03"):
            return ConcurrencyError
        return DataFlowError

    # -- connections -------------------------------------------------------

    async def _connect(self) -> Any:
        url = self.url
        return await asyncpg.connect(
            host=url.host or "localhost",
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=self.connect_timeout,
            statement_cache_size=self.cache_size,
            server_settings={"timezone": "UTC"},
        )

    async def _open(self) -> _Connection:
        try:
            return _Connection(await self._connect())
        except asyncpg.PostgresError as exc:
            # The server answered but refused a session for now (database not accepting
            # connections, too many clients, starting up): the database is unreachable.
            if (getattr(exc, "sqlstate", "") or "")[:2] in ("53", "55", "57"):
                raise self.connection_error(exc) from exc
            raise

    async def _close(self, conn: _Connection) -> None:
        await conn.raw.close(timeout=2)

    def _is_lost(self, exc: BaseException) -> bool:
        return _is_lost(exc)

    def _kill(self, conn: _Connection) -> None:
        _kill(conn)

    # -- schema ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def schema_lock(self, conn: Any) -> AsyncIterator[None]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", [_SCHEMA_LOCK_KEY])
        yield

    def membership_index(self, table: sa.Table, column: str, name: str) -> Any:
        return sa.Index(
            name,
            table.c[column],
            postgresql_using="gin",
            postgresql_ops={column: "jsonb_path_ops"},
        )

    # -- statements --------------------------------------------------------

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> Any:
        stmt = sa_pg.insert(table).values(
            {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns}
        )
        return stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={n: stmt.excluded[n] for n in update_columns}
        )

    def json_merge(self, column: Any, doc: Any, paths: Sequence[Any]) -> Any:
        # jsonb || jsonb is a shallow merge that keeps JSON nulls as values.
        empty = sa.cast(sa.literal("{}"), sa_pg.JSONB)
        return sa.func.coalesce(column, empty).op("||")(doc)

    def json_contains(self, column: Any, element: Any) -> Any:
        return column.op("@>")(sa.cast(element, sa_pg.JSONB))

    def membership_value(self, element_json: str) -> Any:
        return f"[{element_json}]"

    # -- notifications -----------------------------------------------------

    def notify_sql(self) -> str:
        return "SELECT pg_notify($1, $2)"

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()

        def deliver(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            queue.put_nowait(payload)

        try:
            raw = await self._connect()
        except Exception as exc:
            raise self.connection_error(exc) from exc
        try:
            await raw.add_listener(channel, deliver)
            yield queue
        finally:
            with contextlib.suppress(Exception):
                await raw.close(timeout=2)


DIALECT = PostgreSQLDialect
