"""MySQL and MariaDB through asyncmy (installed with the ``mysql`` extra).

Timestamps are ``DATETIME(6)`` holding UTC (the session time zone is pinned to
UTC); JSON is ``JSON``; JSON list membership uses an indexed side table (MySQL
has no portable index over array elements). Connections use ``FOUND_ROWS`` so
an UPDATE reports the rows it matched, like the other databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as sa_mysql

from dataflow.dialects.base import GUARD, BatchPart
from dataflow.dialects.connection import Connection
from dataflow.dialects.pool import PooledDialect
from dataflow.errors import (
    ConcurrencyError,
    ConfigurationError,
    ConnectionLostError,
    DatabaseRefusedError,
    DataFlowError,
    DuplicateKeyError,
    IntegrityError,
    SchemaError,
    ValidationError,
)
from dataflow.models import Kind
from dataflow.options import COMMON, Option, choice, count, file_path

try:
    import asyncmy
    import asyncmy.errors as _errors
    from asyncmy.constants.CLIENT import FOUND_ROWS, MULTI_STATEMENTS
except ImportError:  # pragma: no cover - depends on the installed extras
    asyncmy = None  # type: ignore[assignment]

__all__ = ["MySQLDialect"]

_LOST_CODES = {2003, 2006, 2013, 2055, 1053, 1927, 4031}
_CONCURRENCY_CODES = {1205, 1213}
_VALUE_CODES = {1264, 1265, 1366, 1406, 3140, 4025}
_ALREADY_THERE = {1050, 1060, 1061}  # table exists, duplicate column, duplicate key name
_BIN = "utf8mb4_bin"
#: The server refuses the configuration: access denied (1044, 1045, 1698), unknown
#: database (1049).
_REFUSED_CODES = frozenset({1044, 1045, 1049, 1698})


_SSL_MODES = ("disabled", "preferred", "required", "verify_ca", "verify_identity")
T = TypeVar("T")


def _encode_dt(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _decode_dt(value: datetime) -> datetime:
    return datetime.combine(value, value.time(), UTC)  # 3x faster than .replace(tzinfo=)


def _code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _is_lost(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | OSError | EOFError):
        return True
    if asyncmy is not None and isinstance(exc, _errors.InterfaceError):
        return True
    return (
        asyncmy is not None
        and isinstance(exc, _errors.OperationalError)
        and _code(exc) in _LOST_CODES
    )


class _Connection(Connection):
    """An asyncmy connection; ``timeout`` bounds each call (asyncmy has no limit of its own)."""

    __slots__ = ("timeout",)

    def __init__(self, raw: Any, dialect: MySQLDialect) -> None:
        super().__init__(raw, dialect)
        self.timeout = dialect.command_timeout

    def _timed(self, call: Awaitable[T]) -> Awaitable[T]:
        return call if self.timeout is None else self._within(call, self.timeout)

    @staticmethod
    async def _within(call: Awaitable[T], seconds: float) -> T:
        async with asyncio.timeout(seconds):
            return await call

    async def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> Any:
        async with self.raw.cursor() as cur:
            count = await cur.execute(sql, tuple(args))
            return list(await cur.fetchall()) if fetch else int(count)

    def _fetch(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Sequence[Any]]]:
        return self._timed(self._run(sql, args, True))

    def _execute(self, sql: str, args: Sequence[Any]) -> Awaitable[int]:
        return self._timed(self._run(sql, args, False))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Awaitable[None]:
        return self._timed(self._many(sql, rows))

    async def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self.raw.cursor() as cur:
            await cur.executemany(sql, [tuple(r) for r in rows])

    def _script(self, sql: str, args: Sequence[Any]) -> Awaitable[list[Any]]:
        return self._timed(self._last_row(sql, args))

    def _results(self, sql: str, args: Sequence[Any]) -> Awaitable[list[list[Sequence[Any]]]]:
        return self._timed(self._all_results(sql, args))

    async def _last_row(self, sql: str, args: Sequence[Any]) -> list[Any]:
        return list((await self._all_results(sql, args))[-1][0])

    async def _all_results(self, sql: str, args: Sequence[Any]) -> list[list[Sequence[Any]]]:
        """Send a multi-statement script; the rows of each of its queries, in order.

        A statement that fails ends the script, leaving a transaction it began
        open: it is rolled back here, before the error is reported."""
        results: list[list[Sequence[Any]]] = []
        async with self.raw.cursor() as cur:
            try:
                await cur.execute(sql, tuple(args))
                while True:
                    if cur.description:
                        results.append(list(await cur.fetchall()))
                    if not await cur.nextset():
                        break
            except Exception as exc:
                if not _is_lost(exc):
                    with contextlib.suppress(Exception):
                        await self.raw.rollback()
                raise
        return results

    def _begin(self) -> Awaitable[None]:
        return self._timed(self.raw.begin())

    def _commit(self) -> Awaitable[None]:
        return self._timed(self.raw.commit())

    def _rollback(self) -> Awaitable[None]:
        return self._timed(self.raw.rollback())

    def usable(self) -> bool:
        transport = getattr(self.raw, "_transport", None)
        return transport is not None and not transport.is_closing()


def _ssl_context(options: Mapping[str, Any]) -> ssl.SSLContext | None:
    """The TLS context of ``ssl_mode`` (MySQL's names; unset or ``disabled``: no TLS)."""
    mode = options.get("ssl_mode")
    if mode in (None, "disabled"):
        if any(options.get(k) for k in ("ssl_ca", "ssl_cert", "ssl_key")):
            raise ConfigurationError("ssl_ca, ssl_cert and ssl_key need ssl_mode")
        return None
    if mode == "preferred":
        raise ConfigurationError(
            "ssl_mode=preferred is not supported (it falls back to plain text silently): "
            "use required, verify_ca or verify_identity"
        )
    context = ssl.create_default_context(cafile=options.get("ssl_ca"))
    context.check_hostname = mode == "verify_identity"
    if mode == "required":
        context.verify_mode = ssl.CERT_NONE
    if options.get("ssl_cert"):
        context.load_cert_chain(options["ssl_cert"], options.get("ssl_key"))
    return context


class MySQLDialect(PooledDialect):
    """MySQL/MariaDB: JSON, DATETIME(6) in UTC, side-table membership indexes."""

    name = "mysql"
    # MariaDB walks the ORDER BY index for `a = ? OR id IN (side table)` instead of
    # merging the two indexes: 300 ms at 300,000 rows where each branch alone takes 1 ms.
    or_uses_indexes = False
    encode_datetime = staticmethod(_encode_dt)
    decode_datetime = staticmethod(_decode_dt)
    bool_as_int = True
    supports_batch_script = True
    fold_reads = "script"
    columns_sql = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = %s"
    )
    indexes_sql = (
        "SELECT DISTINCT index_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = %s"
    )

    OPTIONS: ClassVar[Mapping[str, Option]] = {
        **COMMON,
        "ssl_mode": choice(None, *_SSL_MODES),
        "ssl_ca": file_path(),
        "ssl_cert": file_path(),
        "ssl_key": file_path(),
        # MariaDB Galera: causal reads across nodes, and server-side retries of
        # autocommit statements that failed certification (session settings).
        "wsrep_sync_wait": count(None, low=0, high=15),
        "wsrep_retry_autocommit": count(None, low=0, high=10_000),
    }

    def __init__(self, url: Any, options: Mapping[str, Any]) -> None:
        super().__init__(url, options)
        if asyncmy is None:
            raise ConfigurationError("MySQL needs asyncmy: pip install 'kaizen-dataflow[mysql]'")
        if url.driver not in (None, "asyncmy", "aiomysql", "pymysql", "mysqldb"):
            raise ConfigurationError(f"unsupported MySQL driver {url.driver!r}; asyncmy is used")
        self.sa_dialect = sa_mysql.asyncmy.dialect()
        try:
            self._ssl = _ssl_context(options)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot load the TLS files: {exc}") from None
        settings = ["time_zone = '+00:00'"]
        for name in ("wsrep_sync_wait", "wsrep_retry_autocommit"):
            if options[name] is not None:
                settings.append(f"SESSION {name} = {int(options[name])}")
        self._init_command = "SET " + ", ".join(settings)
        #: Whether the server is a Galera node (known after the first connection).
        self._galera: bool | None = None

    # -- types -------------------------------------------------------------

    def column_type(self, kind: Kind, *, key: bool) -> sa.types.TypeEngine[Any]:
        types: dict[Kind, sa.types.TypeEngine[Any]] = {
            # Binary collation: ids, equality and $contains must be exact, not case-
            # or accent-insensitive as the server's default collation would make them.
            Kind.STR: sa.String(255, collation=_BIN)
            if key
            else sa_mysql.MEDIUMTEXT(collation=_BIN),
            Kind.INT: sa.BigInteger(),
            Kind.FLOAT: sa.Double(),
            Kind.BOOL: sa.Boolean(),
            Kind.DATETIME: sa_mysql.DATETIME(fsp=6),
            Kind.JSON: sa.JSON(),
        }
        return types[kind]

    def kind_of(self, db_type: str) -> Kind | None:
        return {
            "bigint": Kind.INT,
            "double": Kind.FLOAT,
            "tinyint": Kind.BOOL,
            "datetime": Kind.DATETIME,
            "varchar": Kind.STR,
            "mediumtext": Kind.STR,
            "json": Kind.JSON,
            "longtext": Kind.JSON,  # MariaDB's JSON is an alias of LONGTEXT
        }.get(db_type)

    # -- errors ------------------------------------------------------------

    def breaks(self, exc: BaseException) -> bool:
        # InternalError: "Packet sequence number wrong"; 2000-2999: client-side errors
        # such as 2014 "Commands out of sync": the protocol state is unknown.
        code = _code(exc)
        return isinstance(exc, _errors.InternalError) or (code is not None and 2000 <= code < 3000)

    def error_text(self, exc: BaseException) -> str:
        # asyncmy's text is the repr of its (code, message) args: say it as a sentence.
        text = super().error_text(exc)
        args: tuple[Any, ...] = getattr(exc, "args", ())
        if text != "connection refused" and len(args) == 2 and isinstance(args[0], int):
            return f"{str(args[1]).strip()} (MySQL error {args[0]})"
        return text

    def classify(self, exc: BaseException) -> type[DataFlowError] | None:
        if _is_lost(exc):
            return ConnectionLostError
        if isinstance(exc, UnicodeEncodeError):  # e.g. a lone surrogate in a str
            return ValidationError
        if not isinstance(exc, _errors.MySQLError):
            return None
        code = _code(exc)
        if code == 1062:
            return DuplicateKeyError
        if code in _REFUSED_CODES:
            return DatabaseRefusedError
        if isinstance(exc, _errors.IntegrityError):
            return IntegrityError
        if code in _VALUE_CODES or isinstance(exc, _errors.DataError):
            return ValidationError
        if code in _CONCURRENCY_CODES:
            return ConcurrencyError
        return DataFlowError

    # -- connections -------------------------------------------------------

    async def _open(self) -> _Connection:
        url = self.url
        raw = await asyncmy.connect(
            host=url.host or "localhost",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            database=url.database,
            autocommit=True,
            charset="utf8mb4",
            client_flag=FOUND_ROWS | MULTI_STATEMENTS,
            connect_timeout=self.connect_timeout,
            init_command=self._init_command,
            ssl=self._ssl,
        )
        if self._galera is None:
            await self._detect_galera(raw)
        return _Connection(raw, self)

    async def _detect_galera(self, raw: Any) -> None:
        """On a Galera node (``wsrep_on``), write batches run as transactions, step by
        step: a brute-force abort (another node's write winning) rolls a transaction back
        between the statements of a multi-statement script without stopping it, so the
        script's later statements would run outside the transaction."""
        async with raw.cursor() as cur:
            try:
                await cur.execute("SELECT @@wsrep_on")
                galera = bool((await cur.fetchone())[0])
            except _errors.MySQLError:  # MySQL: no such variable, no Galera
                galera = False
        self._galera = galera
        self.supports_batch_script = not galera

    async def _close(self, conn: Connection) -> None:
        conn.raw.close()

    def _kill(self, conn: Connection) -> None:
        # asyncmy's close() needs the (closed) event loop: shut the socket down instead,
        # which ends the server's session at once.
        transport = getattr(conn.raw, "_transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    # -- schema ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def schema_lock(self, conn: Any) -> AsyncIterator[None]:
        # DDL commits implicitly in MySQL, so a named lock (not the transaction) serializes it.
        rows = await conn.fetch("SELECT GET_LOCK('dataflow_schema', 60)", [])
        if not rows or rows[0][0] != 1:
            raise ConcurrencyError("timed out waiting for the schema lock")
        try:
            yield
        finally:
            if not conn.broken:  # a lost session released the lock with itself
                await conn.fetch("SELECT RELEASE_LOCK('dataflow_schema')", [])

    async def prepare_index(self, conn: Connection, table: sa.Table, index: sa.Index) -> None:
        """A text field that becomes indexed is stored as MEDIUMTEXT, which MySQL cannot
        index whole: convert it in place to the key type (``VARCHAR(255)``).

        Raises:
            SchemaError: A stored value is longer than 255 characters (nothing changed).
        """
        stored = await self.table_columns(conn, table.name) or {}
        quote = self.sa_dialect.identifier_preparer.quote
        key = self.column_type(Kind.STR, key=True).compile(dialect=self.sa_dialect)
        for column in index.columns:
            if stored.get(column.name) not in ("mediumtext", "text", "longtext"):
                continue
            probe = (
                sa.select(sa.literal(1))
                .select_from(table)
                .where(sa.func.char_length(column) > 255)
                .limit(1)
                .compile(dialect=self.sa_dialect, compile_kwargs={"literal_binds": True})
            )
            if await conn.fetch(str(probe), []):
                raise SchemaError(
                    f"column {table.name}.{column.name} is now indexed, but a stored value is "
                    "longer than 255 characters, the longest an indexed text can be; shorten "
                    "it or drop the index"
                )
            null = "NULL" if column.nullable else "NOT NULL"
            await self.run_ddl(
                conn,
                f"ALTER TABLE {quote(table.name)} MODIFY COLUMN {quote(column.name)} {key} {null}",
                [],
            )

    async def run_ddl(self, conn: Connection, sql: str, args: Sequence[Any]) -> None:
        # GET_LOCK is per node on Galera, so another node may have created the table,
        # index or column between our look at the catalog and our DDL: that is fine.
        try:
            await conn.execute(sql, args)
        except DataFlowError as exc:
            cause = exc.__cause__
            if cause is None or _code(cause) not in _ALREADY_THERE:
                raise

    # -- statements --------------------------------------------------------

    def batch_script(self, parts: Sequence[BatchPart]) -> str:
        """One transaction sent at once (connections allow multi-statements; every
        value is escaped by the driver as in any statement): each part's row count
        kept in a session variable, a guarded part ``WHERE`` its guard's is not 0,
        the counts selected last."""
        statements = ["START TRANSACTION"]
        counts: list[str] = []
        for i, part in enumerate(parts):
            sql = part.sql
            if part.guard is not None:
                sql = sql.replace(GUARD, f"@dataflow_{part.guard} > 0")
            statements += [sql, f"SET @dataflow_{i} = ROW_COUNT()"]
            counts.append(f"@dataflow_{i}")
        statements += ["COMMIT", f"SELECT {', '.join(counts)}"]
        return ";\n".join(statements)

    def upsert(self, table: sa.Table, update_columns: Sequence[str]) -> sa.Insert:
        stmt = sa_mysql.insert(table).values(
            {c.name: sa.bindparam(f"v_{c.name}") for c in table.columns}
        )
        return stmt.on_duplicate_key_update({n: stmt.inserted[n] for n in update_columns})

    def order_nullable(
        self, column: sa.ColumnElement[Any], desc: bool
    ) -> list[sa.UnaryExpression[Any]]:
        # No NULLS FIRST/LAST in MySQL: sort on "IS NULL" first (NULL as the largest value).
        is_null = column.is_(None)
        return [is_null.desc(), column.desc()] if desc else [is_null.asc(), column.asc()]

    def limit_delete(
        self,
        stmt: sa.Delete,
        table: sa.Table,
        where: sa.ColumnElement[bool],
        limit: sa.BindParameter[int],
    ) -> sa.Delete:
        # MySQL refuses LIMIT inside IN (...), and MariaDB scans the whole table for
        # an IN over a derived table; a join with the limited derived table
        # (DELETE ... USING) reads only the rows found through the filter's index.
        picked = sa.select(table.c.id).where(where).limit(limit).subquery("picked")
        return stmt.where(table.c.id == picked.c.id)

    def json_key_addressable(self, key: str) -> bool:
        # MariaDB 10.9+ reads $."-a" as a negative array index and refuses the path.
        return not key.startswith("-")

    def json_merge(
        self,
        column: sa.ColumnElement[Any],
        doc: sa.BindParameter[Any],
        paths: Sequence[sa.BindParameter[str]],
    ) -> sa.ColumnElement[Any]:
        args: list[Any] = [sa.func.coalesce(column, sa.func.json_object())]
        for path in paths:
            # JSON_EXTRACT keeps the value's JSON type inside JSON_SET.
            args += [path, sa.func.json_extract(doc, path)]
        return sa.func.json_set(*args)


DIALECT = MySQLDialect
