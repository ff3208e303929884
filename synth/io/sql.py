"""SQL sources and sinks through SQLAlchemy 2 (PostgreSQL via psycopg 3, or any dialect).

A SQL source is written ``sql:<query>`` or ``sql:<table>`` (``sql:SELECT * FROM admissions
WHERE year = 2025``, ``sql:warehouse.admissions``). The connection URL is never part of
the source or of a file: it is read from an environment variable (``SYNTH_SQL_URL`` unless
``source.sql_url_env`` names another), which a deployment fills from a Prefect Secret
block. Passwords may also come from libpq's own ``PGPASSWORD`` / ``~/.pgpass``.

Reading streams the query through a server-side cursor in batches of ``batch_rows``
(Polars builds each batch), so an extract larger than memory never is in memory.
Writing one table goes to a temporary table that is renamed over the target (``replace``)
or inserted into it (``append``) inside one transaction: readers see the old table or the
new one, never a half-written one. Related tables (:func:`write_related_tables`) are
written together, with their primary and foreign keys, in one transaction. On PostgreSQL rows are sent with ``COPY``. An append
may name its ``release``: the ledger table ``synth_appends`` (in the target's schema)
records each release appended to each table in the same transaction, so a rerun of a
release appends nothing the second time.

A dropped connection, a timeout or a database that is restarting raise
:class:`~synth.errors.TransientError` (retried by the tasks; a write is one transaction,
so a retry starts clean); a bad query, an unknown table or refused credentials raise
:class:`~synth.errors.SourceError`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Literal

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

from synth.errors import SourceError
from synth.io.faults import storage_error
from synth.io.uri import SQL_PREFIX

WriteMode = Literal["replace", "append"]
LEDGER = "synth_appends"
_TABLE_NAME = re.compile(r"^[A-Za-z_][\w$]*(\.[A-Za-z_][\w$]*)?$")
_INSERT_BATCH = 10_000


def engine_from_env(env_var: str = "SYNTH_SQL_URL") -> sa.Engine:
    """A SQLAlchemy engine for the URL held in ``env_var`` (e.g. ``postgresql+psycopg://user@host/db``).

    Raises:
        SourceError: the variable is unset or its URL cannot be used.
    """
    url = os.environ.get(env_var)
    if not url:
        raise SourceError(
            f"the SQL connection URL is read from the environment variable {env_var}, which is not set; "
            "set it (a deployment fills it from a Prefect Secret block) or name another in source.sql_url_env"
        )
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise SourceError(f"{env_var}: cannot use this SQLAlchemy URL ({_first_line(exc)})") from None


def query_of(source: str) -> str:
    """The SQL query a ``sql:`` source names (a bare table name becomes ``SELECT * FROM`` it)."""
    text = source[len(SQL_PREFIX) :].strip() if source.startswith(SQL_PREFIX) else source.strip()
    if not text:
        raise SourceError("empty sql: source; write sql:<query> or sql:<table>")
    if _TABLE_NAME.match(text):
        return f"SELECT * FROM {text}"
    return text.rstrip(";")


def count_rows(engine: sa.Engine, query: str) -> int:
    """Rows the query returns (counted by the database)."""
    with _connect(engine, query) as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM ({query}) AS synth_source")).scalar_one())


def query_fingerprint(engine: sa.Engine, query: str) -> str:
    """SHA-256 of the query text and its row count: a cheap marker of a changed extract.

    It cannot see an update that keeps the row count; put a snapshot date or a
    last-modified filter in the query when that matters.
    """
    rows = count_rows(engine, query)
    return hashlib.sha256(f"{query}\n{rows}".encode()).hexdigest()


def read_batches(engine: sa.Engine, query: str, batch_rows: int = 500_000) -> Iterator[pa.Table]:
    """Stream the query's rows as Arrow tables of at most ``batch_rows`` rows (server-side cursor).

    Each batch's types are inferred from all its rows (a text column that is empty for its
    first hundred rows is still text); batches may still differ where one holds only
    nulls, which readers unify (null promotes to the other batches' type).
    """
    with _connect(engine, query) as conn:
        streaming = conn.execution_options(stream_results=True, max_row_buffer=batch_rows)
        try:
            batches = pl.read_database(
                sa.text(query), streaming, iter_batches=True, batch_size=batch_rows, infer_schema_length=None
            )
            for frame in batches:
                if frame.height:
                    yield frame.to_arrow()
        except sa.exc.SQLAlchemyError as exc:
            raise storage_error(exc, "the SQL query failed") from None


def write_table(
    engine: sa.Engine,
    name: str,
    tables: Iterable[pa.Table],
    mode: WriteMode = "replace",
    release: str | None = None,
    run_id: str | None = None,
) -> int:
    """Write ``tables`` (one schema) to the table ``name`` in one transaction; returns the rows written.

    Args:
        engine: where to write.
        name: ``table`` or ``schema.table``.
        tables: the rows, in batches (e.g. the Parquet parts of a synthetic dataset).
        mode: ``replace`` swaps the new table in for the old one; ``append`` adds the rows.
        release: with ``append``, what these rows are a release of (e.g. the run key): a release
            already recorded in the ledger for ``name`` is not appended again (0 rows written).
        run_id: recorded in the ledger beside the release (which run appended it).

    Raises:
        SourceError: a bad table name, no rows, or the database refused the write.
        TransientError: the connection dropped or timed out; nothing was written (one transaction).
    """
    if not _TABLE_NAME.match(name):
        raise SourceError(f"{name!r} is not a plain table name (letters, digits, _; optionally schema.table)")
    schema_name, _, table_name = name.rpartition(".")
    batches = iter(tables)
    first = next(batches, None)
    if first is None:
        raise SourceError(f"nothing to write to {name}")
    metadata = sa.MetaData(schema=schema_name or None)
    staging = sa.Table(
        f"{table_name}__synth_{uuid.uuid4().hex[:8]}",
        metadata,
        *[sa.Column(f.name, _sql_type(f.type)) for f in first.schema],
    )
    ledger = _ledger(metadata) if mode == "append" and release else None
    preparer = engine.dialect.identifier_preparer
    target = preparer.quote(table_name)
    if schema_name:
        target = f"{preparer.quote_schema(schema_name)}.{target}"
    rows = 0
    try:
        if ledger is not None:
            _create_ledger(engine, ledger)
        with engine.begin() as conn:
            if ledger is not None and _appended(conn, ledger, name, release):
                return 0
            staging.create(conn)
            for table in _chain(first, batches):
                rows += _insert(conn, staging, table)
            staged = preparer.format_table(staging)
            exists = sa.inspect(conn).has_table(table_name, schema=schema_name or None)
            if mode == "append" and exists:
                columns = ", ".join(preparer.quote(c.name) for c in staging.columns)
                conn.execute(sa.text(f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {staged}"))
                conn.execute(sa.text(f"DROP TABLE {staged}"))
            else:
                if exists:
                    conn.execute(sa.text(f"DROP TABLE {target}"))
                conn.execute(sa.text(f"ALTER TABLE {staged} RENAME TO {preparer.quote(table_name)}"))
            if ledger is not None:
                # Last, so a concurrent append of the same release waits here and then fails on the key.
                conn.execute(ledger.insert().values(
                    target_table=name, release_key=release, row_count=rows, run_id=run_id,
                    appended_at=dt.datetime.now(dt.UTC),
                ))
    except sa.exc.IntegrityError as exc:
        if ledger is not None and _appended_now(engine, ledger, name, release):
            return 0  # another run appended this release at the same time; this one rolled back
        raise storage_error(exc, f"cannot write SQL table {name}") from None
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
        raise storage_error(exc, f"cannot write SQL table {name}") from None
    return rows


def write_related_tables(
    engine: sa.Engine,
    tables: dict[str, Iterable[pa.Table]],
    primary_keys: dict[str, str | None],
    foreign_keys: dict[str, list[tuple[str, str, str]]],
    prefix: str,
    schema: str | None = None,
) -> dict[str, int]:
    """Write related tables with their keys and constraints, all in one transaction (replacing earlier ones).

    Each table ``t`` becomes ``<prefix>t`` with its primary key and a ``NOT NULL`` column
    and ``FOREIGN KEY`` per ``(column, parent, parent_key)`` of ``foreign_keys[t]``. Earlier tables of those names
    are dropped (children first) and the new ones created and filled (parents first) inside
    the transaction, so readers see the old set or the new one, never a mix.

    Args:
        engine: where to write.
        tables: the rows of each table in batches, parents before children.
        primary_keys: each table's primary key column (None: none).
        foreign_keys: each table's ``(column, parent table, parent's key)``.
        prefix: put before every table name (e.g. ``synth_``), keeping them apart from the real tables.
        schema: the database schema the tables go to (default: the connection's).

    Returns:
        ``{table: rows written}``.

    Raises:
        SourceError: a name that is not a plain table name, or the database refused the write.
        TransientError: the connection dropped or timed out; nothing was written.
    """
    names = {name: f"{prefix}{name}" for name in tables}
    bad = [n for n in names.values() if not _TABLE_NAME.match(n) or "." in n]
    if bad:
        raise SourceError(f"{bad} are not plain table names (letters, digits, _): choose another SQL prefix")
    metadata = sa.MetaData(schema=schema)
    batches, created = {}, {}
    for name, parts in tables.items():
        parts = iter(parts)
        first = next(parts, None)
        if first is None:
            raise SourceError(f"nothing to write to {names[name]}")
        batches[name] = _chain(first, parts)
        linked = {column for column, _, _ in foreign_keys.get(name, [])}  # every row has its parent
        columns = [sa.Column(f.name, _sql_type(f.type), primary_key=f.name == primary_keys.get(name),
                             nullable=f.name not in linked and f.name != primary_keys.get(name), autoincrement=False)
                   for f in first.schema]
        links = [sa.ForeignKeyConstraint([column], [".".join(filter(None, [schema, names[parent], key]))])
                 for column, parent, key in foreign_keys.get(name, [])]
        created[name] = sa.Table(names[name], metadata, *columns, *links)
    rows = {}
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # pysqlite opens no transaction before DDL: open it ourselves
                conn.exec_driver_sql("BEGIN")
            for name in reversed(list(tables)):  # children first: their foreign keys point at the parents
                created[name].drop(conn, checkfirst=True)
            for name in tables:
                created[name].create(conn)
                rows[name] = sum(_insert(conn, created[name], table) for table in batches[name])
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
        raise storage_error(exc, f"cannot write SQL tables {', '.join(names.values())}") from None
    return rows


def _ledger(metadata: sa.MetaData) -> sa.Table:
    """The table recording which release was appended to which table (one row per append)."""
    return sa.Table(
        LEDGER,
        metadata,
        sa.Column("target_table", sa.String(255), primary_key=True),
        sa.Column("release_key", sa.String(255), primary_key=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(255)),
        sa.Column("appended_at", sa.DateTime(timezone=True), nullable=False),
    )


def _create_ledger(engine: sa.Engine, ledger: sa.Table) -> None:
    """Create the ledger unless it exists (in its own transaction: two first appends may race to it)."""
    try:
        with engine.begin() as conn:
            ledger.create(conn, checkfirst=True)
    except sa.exc.SQLAlchemyError:
        if not sa.inspect(engine).has_table(ledger.name, schema=ledger.schema):
            raise


def _appended(conn: sa.Connection, ledger: sa.Table, name: str, release: str) -> bool:
    found = conn.execute(
        sa.select(ledger.c.row_count).where(ledger.c.target_table == name, ledger.c.release_key == release)
    )
    return found.first() is not None


def _appended_now(engine: sa.Engine, ledger: sa.Table, name: str, release: str) -> bool:
    try:
        with engine.connect() as conn:
            return _appended(conn, ledger, name, release)
    except sa.exc.SQLAlchemyError:
        return False


def fetch_table(engine: sa.Engine, name: str) -> pa.Table:
    """A whole (small) table as Arrow, e.g. to check what :func:`write_table` wrote."""
    return pa.concat_tables(list(read_batches(engine, query_of(name))), promote_options="permissive")


def _insert(conn: sa.Connection, staging: sa.Table, table: pa.Table) -> int:
    table = _plain(table)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        _copy(conn, staging, table)
    else:
        for start in range(0, table.num_rows, _INSERT_BATCH):
            conn.execute(staging.insert(), table.slice(start, _INSERT_BATCH).to_pylist())
    return table.num_rows


def _copy(conn: sa.Connection, staging: sa.Table, table: pa.Table) -> None:
    """``COPY ... FROM STDIN`` with CSV written by Arrow (valid values quoted, nulls left empty)."""
    preparer = conn.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(c) for c in table.column_names)
    statement = f"COPY {preparer.format_table(staging)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(statement) as copy:
        for batch in table.to_batches(max_chunksize=100_000):
            buffer = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buffer, write_options=options)
            copy.write(buffer.getvalue())


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as their values (SQL has no dictionary type)."""
    columns = [col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col for col in table.columns]
    return pa.Table.from_arrays(columns, names=table.column_names)


def _sql_type(dtype: pa.DataType) -> sa.types.TypeEngine:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return sa.Boolean()
    if pa.types.is_int8(dtype) or pa.types.is_int16(dtype) or pa.types.is_uint8(dtype):
        return sa.SmallInteger()
    if pa.types.is_int32(dtype) or pa.types.is_uint16(dtype):
        return sa.Integer()
    if pa.types.is_int64(dtype) or pa.types.is_uint32(dtype):
        return sa.BigInteger()
    if pa.types.is_uint64(dtype):
        return sa.Numeric(20, 0)
    if pa.types.is_floating(dtype):
        return sa.Double()
    if pa.types.is_decimal(dtype):
        return sa.Numeric(dtype.precision, dtype.scale)
    if pa.types.is_timestamp(dtype):
        return sa.DateTime(timezone=dtype.tz is not None)
    if pa.types.is_date(dtype):
        return sa.Date()
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return sa.Text()
    raise SourceError(f"cannot write Arrow type {dtype} to SQL")


def _chain(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


class _connect:
    """A connection whose failures become :class:`SourceError` naming the query's start."""

    def __init__(self, engine: sa.Engine, query: str):
        self.engine, self.query = engine, query

    def __enter__(self) -> sa.Connection:
        try:
            self.conn = self.engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise storage_error(exc, "cannot connect to the SQL database") from None
        return self.conn

    def __exit__(self, kind, error, tb):
        self.conn.close()
        if isinstance(error, sa.exc.SQLAlchemyError):
            raise storage_error(error, f"SQL failed ({self.query[:80]}...)") from None
        return False


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
