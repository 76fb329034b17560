"""PostgreSQL through asyncpg (installed with the ``postgres`` extra).

JSON is JSONB (sent and received as text, so no per-connection codec set-up);
timestamps are ``timestamptz``; JSON list membership uses a GIN index with
``@>``; waiters get LISTEN/NOTIFY on a dedicated connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as sa_pg

from dataflow.dialects.base import GUARD, BatchPart
from dataflow.dialects.connection import Connection
from dataflow.dialects.pg_listen import Listener
from dataflow.dialects.pool import PooledDialect
from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    TransactionAbortedError,
    ValidationError,
)
from dataflow.models import Kind
from dataflow.options import COMMON, Option, choice, count, file_path

if TYPE_CHECKING:
    from dataflow.urls import DatabaseURL

try:
    import asyncpg
    from asyncpg.exceptions._base import DataError as _ClientDataError
except ImportError:  # pragma: no cover - depends on the installed extras
    asyncpg = None
    _ClientDataError = ValueError

__all__ = ["PostgreSQLDialect"]

_SCHEMA_LOCK_KEY = 0x64617461666C6F77  # "dataflow"
_LOST_STATES = ("08", "57P")  # connection exceptions; admin shutdown / termination
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_SSL_FILES = ("sslrootcert", "sslcert", "sslkey")
_PARAM = re.compile(r"\$(\d+)")


def _iso_utc(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def _shift(offset: int, match: re.Match[str]) -> str:
    return f"${int(match[1]) + offset}"


_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write", "read-only")


def _dsn(url: DatabaseURL, options: Mapping[str, Any]) -> str:
    """The DSN asyncpg connects with: hosts, database, user and TLS settings, no password
    (given separately, so it never sits in a string a driver could echo)."""
    hosts = ",".join(
        (f"[{h}]" if h and ":" in h else (h or "localhost")) + f":{p or 5432}" for h, p in url.hosts
    )
    auth = f"{quote(url.username, safe='')}@" if url.username else ""
    query = {k: options[k] for k in ("sslmode", *_SSL_FILES) if options.get(k) is not None}
    tail = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{auth}{hosts}/{quote(url.database or '', safe='')}{tail}"


class _Connection(Connection):
    """An asyncpg connection."""

    __slots__ = ()

    def _fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Sequence[Any]]]:
        rows: Awaitable[list[Sequence[Any]]] = self.raw.fetch(sql, *args)
        return rows

    async def _script(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return list(await self.raw.fetchrow(sql, *args))

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        status = await self.raw.execute(sql, *args)
        tail = status.rpartition(" ")[2]
        return int(tail) if tail.isdigit() else 0

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]:
        done: Awaitable[None] = self.raw.executemany(sql, rows)
        return done

    async def _begin(self) -> None:
        await self.raw.execute(self.begin_sql)

    async def _commit(self) -> None:
        # PostgreSQL answers COMMIT of a transaction a failed statement aborted with
        # ROLLBACK: nothing was committed, which must not pass for success.
        if await self.raw.execute("COMMIT") == "ROLLBACK":
            raise TransactionAbortedError(
                "PostgreSQL rolled the transaction back at COMMIT: a statement in it had failed"
            )

    async def _rollback(self) -> None:
        await self.raw.execute("ROLLBACK")

    def usable(self) -> bool:
        return not self.raw.is_closed()


def _is_lost(exc: BaseException) -> bool:
    if asyncpg is None:  # pragma: no cover
        return False
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state.startswith(_LOST_STATES)
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)  # "cannot perform operation: connection is closed"
    # InternalClientError: a connection terminated by the server right after a
    # simple-protocol statement (e.g. COMMIT) is left open in a failed state, and the
    # next statement is refused before anything is sent.
    return isinstance(
        exc, asyncpg.InternalClientError | ConnectionError | OSError | asyncio.TimeoutError
    )


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
    supports_batch_script = True
    fold_reads = "json"
    OPTIONS: ClassVar[Mapping[str, Option]] = {
        **COMMON,
        "statement_cache_size": count(512, low=0),
        "target_session_attrs": choice(None, *_SESSION_ATTRS),
        "sslmode": choice(None, *_SSL_MODES),
        "sslrootcert": file_path(),
        "sslcert": file_path(),
        "sslkey": file_path(),
    }

    def __init__(self, url: DatabaseURL, options: Mapping[str, Any]) -> None:
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
        self.cache_size: int = options["statement_cache_size"]
        self._dsn = _dsn(url, options)
        self._listeners: weakref.WeakSet[Listener] = weakref.WeakSet()

    # -- types -------------------------------------------------------------

    def column_type(self, kind: Kind, *, key: bool) -> sa.types.TypeEngine[Any]:
        types: dict[Kind, sa.types.TypeEngine[Any]] = {
            Kind.STR: sa.Text(),
            Kind.INT: sa.BigInteger(),
            Kind.FLOAT: sa.Double(),
            Kind.BOOL: sa.Boolean(),
            Kind.DATETIME: sa.DateTime(timezone=True),
            Kind.JSON: sa_pg.JSONB(),
        }
        return types[kind]

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
        if isinstance(exc, _ClientDataError):  # an argument asyncpg could not encode
            return ValidationError
        if isinstance(exc, asyncpg.InterfaceError):  # e.g. another operation in progress
            return DataFlowError
        if not isinstance(exc, asyncpg.PostgresError):
            return None
        state = getattr(exc, "sqlstate", "") or ""
        if state == "23505":
            return DuplicateKeyError
        if state in ("3D000", "28000", "28P01"):  # no such database; authentication failed
            return DatabaseRefusedError
        if state.startswith("23"):
            return IntegrityError
        if state.startswith("22"):
            return ValidationError
        if state in ("40001", "40P01", "55P03"):
            return ConcurrencyError
        return DataFlowError

    def breaks(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, _ClientDataError)

    # -- connections -------------------------------------------------------

    async def _connect(self) -> Any:
        """A raw asyncpg connection (the caller bounds the time it takes)."""
        return await asyncpg.connect(
            self._dsn,
            password=self.url.password,
            timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
            statement_cache_size=self.cache_size,
            server_settings={"timezone": "UTC"},
            target_session_attrs=self.options["target_session_attrs"],
        )

    async def _open(self) -> _Connection:
        try:
            return _Connection(await self._connect(), self)
        except asyncpg.PostgresError as exc:
            # The server answered but refused a session for now (database not accepting
            # connections, too many clients, starting up): the database is unreachable.
            if (getattr(exc, "sqlstate", "") or "")[:2] in ("53", "55", "57"):
                raise self.connection_error(exc) from exc
            raise

    async def _close(self, conn: Connection) -> None:
        await conn.raw.close(timeout=2)

    def _kill(self, conn: Connection) -> None:
        # Aborts the socket; asyncpg then fails to schedule its callback on the closed
        # loop, which is harmless here.
        with contextlib.suppress(RuntimeError):
            conn.raw.terminate()

    # -- schema ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def schema_lock(self, conn: Any) -> AsyncIterator[None]:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", [_SCHEMA_LOCK_KEY])
        yield

    def membership_index(self, table: sa.Table, column: str, name: str) -> sa.Index:
        return sa.Index(
            name,
            table.c[column],
            postgresql_using="gin",
            postgresql_ops={column: "jsonb_path_ops"},
        )

    # -- statements --------------------------------------------------------

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> sa.Insert:
        stmt = sa_pg.insert(table).values(
            {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns}
        )
        return stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={n: stmt.excluded[n] for n in update_columns}
        )

    def json_merge(
        self,
        column: sa.ColumnElement[Any],
        doc: sa.BindParameter[Any],
        paths: Sequence[sa.BindParameter[str]],
    ) -> sa.ColumnElement[Any]:
        # jsonb || jsonb is a shallow merge that keeps JSON nulls as values.
        empty = sa.cast(sa.literal("{}"), sa_pg.JSONB)
        return sa.func.coalesce(column, empty).op("||")(doc)

    def json_contains(
        self, column: sa.ColumnElement[Any], element: sa.BindParameter[Any]
    ) -> sa.ColumnElement[bool]:
        return column.op("@>")(sa.cast(element, sa_pg.JSONB))

    def membership_value(self, element_json: str) -> str:
        return f"[{element_json}]"

    # -- write batches -----------------------------------------------------

    def batch_script(self, parts: Sequence[BatchPart]) -> str:
        """One statement: each part a data-modifying CTE (``RETURNING 1``, counted),
        a guarded one ``WHERE EXISTS`` its guard's rows; notifications in the final
        SELECT, sent when that statement commits. Its snapshot is the statement's:
        a part sees earlier parts only through their rows, which is all a guard
        needs (each part writes different rows)."""
        # Only names and placeholders are formatted in: every value is an argument.
        ctes: list[str] = []
        counts: list[str] = []
        offset = 0
        for i, part in enumerate(parts):
            if part.notify:
                source = "" if part.guard is None else f" FROM s{part.guard} LIMIT 1"
                call = f"pg_notify(${offset + 1}::text, ${offset + 2}::text)"
                counts.append(f"(SELECT count(*) FROM (SELECT {call}{source}) AS n{i})")  # noqa: S608
            else:
                sql = _PARAM.sub(partial(_shift, offset), part.sql)
                if part.guard is not None:
                    sql = sql.replace(GUARD, f"EXISTS (SELECT 1 FROM s{part.guard})")  # noqa: S608
                ctes.append(f"s{i} AS ({sql} RETURNING 1)")
                counts.append(f"(SELECT count(*) FROM s{i})")  # noqa: S608
            offset += part.nargs
        head = f"WITH {', '.join(ctes)} " if ctes else ""
        return f"{head}SELECT {', '.join(counts)}"

    # -- folded reads --------------------------------------------------------

    def fold_sql(
        self, main: str, main_args: int, related: Sequence[tuple[str, int, tuple[str, ...]]]
    ) -> str:
        """``main`` as a derived table, each related query an ordered ``json_agg``."""
        offset = main_args
        columns = []
        for i, (sql, nargs, names) in enumerate(related):
            inner = _PARAM.sub(partial(_shift, offset), sql)
            fields = ", ".join(f'r{i}."{n}"' for n in names)
            rows = f"json_agg(json_build_array({fields}) ORDER BY r{i}.dataflow_ord)"
            columns.append(f"(SELECT coalesce({rows}, '[]') FROM ({inner}) AS r{i})")  # noqa: S608
            offset += nargs
        return f"SELECT m.*, {', '.join(columns)} FROM ({main}) AS m"  # noqa: S608

    def folded_value(self, kind: Kind) -> Any:
        # json_build_array renders timestamptz as ISO 8601 with its offset and
        # double precision as a JSON number (15.0 as 15); the rest as JSON has them.
        if kind is Kind.DATETIME:
            return _iso_utc
        return float if kind is Kind.FLOAT else None

    # -- notifications -----------------------------------------------------

    def notify_sql(self) -> str:
        return "SELECT pg_notify($1, $2)"

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[asyncio.Queue[str | None]]:
        listener = Listener(self, channel)
        await listener.start()
        self._listeners.add(listener)
        try:
            yield listener.queue
        finally:
            self._listeners.discard(listener)
            await listener.stop()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in [x for x in self._listeners if x.loop is loop]:
            self._listeners.discard(listener)
            await listener.stop()


DIALECT = PostgreSQLDialect
