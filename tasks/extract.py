"""Tasks that read the extract: settings and schema."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prefect import get_run_logger, task

from synth.config import PipelineConfig, load_config
from synth.io.sources import read_table
from synth.schema import Schema, infer_schema
from tasks.user_errors import retry_unless_user_error


@dataclass(frozen=True)
class Extract:
    """What the flow needs to know about the extract: its schema and size (no values)."""

    schema: Schema
    rows: int


@task(name="load-settings")
def load_settings(config_path: str | None, overrides: dict) -> PipelineConfig:
    """The config file (or defaults) with command-line / UI overrides applied."""
    config = load_config(config_path)
    return config.with_overrides(**overrides) if overrides else config


@task(name="inspect-extract", retries=2,
      retry_delay_seconds=[2, 10], retry_condition_fn=retry_unless_user_error)
def inspect_extract(source: str, config: PipelineConfig) -> Extract:
    """Read the extract and infer its schema; logs counts and kinds, never values."""
    table = read_table(source, config)
    schema = infer_schema(table, config)
    kinds = Counter(c.kind.value for c in schema.columns)
    get_run_logger().info(
        f"extract: {table.num_rows:,} rows, {len(schema.columns)} columns "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); entity key: {schema.entity_key or 'none'}"
    )
    return Extract(schema=schema, rows=table.num_rows)
