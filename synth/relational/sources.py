"""Read a relational extract: each table of the config's ``tables:`` from its own source.

Every source is read with the project's readers, so a table may be anything a flat
extract may be: a CSV or Parquet file, a folder or glob of Parquet, an fsspec URI
(:func:`synth.io.sources.read_table`), or a ``sql:`` query or table name read through the
connection URL in ``source.sql_url_env`` (:mod:`synth.io.sql`). Keys the config leaves out
are inferred where names and values make them obvious, each inference said as a sentence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import polars as pl
import pyarrow as pa

from synth.config import PipelineConfig
from synth.errors import ConfigError, SourceError
from synth.io import sql
from synth.io.sources import parse_datetimes, read_table
from synth.io.uri import check_source, is_sql
from synth.preprocess.partitions import source_fingerprint
from synth.relational.schema import RelationalSchema, infer_keys


def relational_sources(config: PipelineConfig) -> dict[str, str]:
    """``{table: source}`` of a relational config.

    Raises:
        ConfigError: the config has no ``tables:`` section.
    """
    if config.tables is None:
        raise ConfigError("this config has no tables: section; give --source for a single-table extract")
    return {name: str(spec.source) for name, spec in config.tables.items()}


def check_sources(config: PipelineConfig) -> None:
    """Fail fast on a table whose file source does not exist or has an unknown format (SQL is checked later).

    Raises:
        SourceError: naming the table and its source.
    """
    for name, source in relational_sources(config).items():
        try:
            check_source(source, config.source.format)
        except SourceError as exc:
            raise SourceError(f"table {name!r}: {exc}") from None


def tables_fingerprint(config: PipelineConfig) -> str:
    """One hash over every table's source fingerprint: it changes when any table changes."""
    prints = {name: source_fingerprint(source, config) for name, source in relational_sources(config).items()}
    return hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()


def read_tables(
    config: PipelineConfig, log: Callable[[str], None] = lambda _: None
) -> tuple[dict[str, pa.Table], RelationalSchema, list[str]]:
    """Every table of the config, the validated tree of their keys (missing keys inferred), and what was inferred.

    Args:
        config: a pipeline config with a ``tables:`` section.
        log: told each table's size, how columns were named, and every key inferred (or not), as sentences.

    Returns:
        ``({table: rows}, schema, one sentence per key inferred or left undecided)``.

    Raises:
        SourceError: a table cannot be read (the message names it).
        ConfigError: the keys do not form a tree (see :meth:`RelationalSchema.from_config`).
    """
    tables = {}
    for name, source in relational_sources(config).items():
        try:
            tables[name] = read_source(source, config, log)
        except SourceError as exc:
            raise SourceError(f"table {name!r}: {exc}") from None
        log(f"table {name!r}: {tables[name].num_rows:,} rows, {tables[name].num_columns} columns")
    completed, said = infer_keys(config.relational(), tables)
    for sentence in said:
        log(sentence)
    return tables, RelationalSchema.from_config(completed, tables), said


def read_source(source: str, config: PipelineConfig, log: Callable[[str], None] = lambda _: None) -> pa.Table:
    """One table from a file, folder, URI or ``sql:`` source, whole (relational tables are fitted in memory)."""
    if not is_sql(source):
        return read_table(source, config, log=log)
    engine = sql.engine_from_env(config.source.sql_url_env)
    try:
        batches = list(sql.read_batches(engine, sql.query_of(source)))
    finally:
        engine.dispose()
    if not batches:
        raise SourceError(f"{source}: the query returned no rows")
    # Databases without a date type (SQLite) hand dates over as text: parsed as a CSV's are.
    table = pa.concat_tables(batches, promote_options="default")
    return parse_datetimes(pl.from_arrow(table), config).to_arrow()
