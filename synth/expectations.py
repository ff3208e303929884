"""The Great Expectations gate: the extract must look like what the schema says before training.

A suite is built from the schema and a profile of the extract's bounded sample:

* every column exists and has a type of the schema's family;
* null fractions: at most the profiled fraction plus ``null_tolerance`` (none at all
  for the patient key);
* numeric ranges: inside the profiled range widened by ``range_margin`` of its span;
* allowed categories: the profiled ones (categorical and boolean columns), allowing the
  share of values a sample of that size is likely to have missed (Good-Turing);
* key uniqueness: identifiers distinct on at least 99% of the profiled rows (e.g. an
  encounter id), within each partition by GX and across partitions by the preprocessing's
  duplicate count;
* row count: between ``min_rows`` and ``max_rows`` for the whole extract.

Range and category expectations allow ``value_tolerance`` of unexpected values, since
the profile is a sample. A suite file the user provides (GX 1.x JSON, as written by
``ExpectationSuite.to_json_dict()``) is merged over it: its expectations replace built
ones of the same type and column, and add the rest. A profile describes the extract it
was drawn from, so to validate a new month against a known-good one, pass the earlier
run's ``expectations.json`` (in its work folder) as the suite: its ranges, categories,
null fractions and keys then replace the ones built from this month's data.

Each partition (or a stated sample of them) is validated on a worker. What leaves the
worker is counts only: expectation, column, elements, unexpected values; GX's full
results, which quote real values, stay in the work folder.

GX's pandas engine is made cheap by what it is handed, not by skipping checks: each
partition is validated twice, the type checks on no rows (a type is the column's dtype)
and every other expectation, batched, on every row, with text as pandas categoricals (GX
filters the whole frame once per column expectation, and fingerprints it once per batch:
codes move, not strings) and integers as NumPy's where a column has no gaps (GX compares
those to a range in one vectorised step, nullable ones one Python call per value). The
frame is loaded into GX once (``Batch.validate`` loads and fingerprints it a second time).
What remains is GX's fixed cost per expectation, which larger partitions amortise.

GX sees the columns under positional aliases (``c0``, ``c1``...), so no column name (an
empty header, a dot, a quote) can trip it; a column the partition lacks fails its
expectations as missing. An exception raised *inside* an expectation is a bug, raised as
:class:`ExpectationCrashed`: it is never reported as the data failing.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synth.config import ColumnKind, ValidationOptions
from synth.errors import ConfigError
from synth.schema import Schema

ROW_COUNT = "expect_table_row_count_to_be_between"
UNIQUE_SHARE = 0.99
UNIQUE = "expect_column_values_to_be_unique"
TYPE_LIST = "expect_column_values_to_be_in_type_list"
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}
_SUITE_NAME = "synth-partition"
_INT_TYPES = [f"{u}Int{b}Dtype" for u in ("", "U") for b in (8, 16, 32, 64)]
_FLOAT_TYPES = ["float16", "float32", "float64"]
# Expectations on the columns' names and dtypes, never their values: checked on no rows.
_SCHEMA_CHECKS = {TYPE_LIST, "expect_column_values_to_be_of_type", "expect_column_to_exist"}
_TIME_TYPES = [f"datetime64[{u}]" for u in ("s", "ms", "us", "ns")]
# Expectations whose observed value is a type name or a count, never a data value.
_COUNTS_OR_TYPES = {TYPE_LIST, ROW_COUNT}
#: Keyword arguments of GX expectations that name columns (one, or a list).
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")


class ExpectationCrashed(RuntimeError):
    """Great Expectations raised inside an expectation: a bug in the gate, not a verdict on the data.

    The message names the expectations, columns and exception types only (an exception's
    text may quote a value); ``result`` is GX's full result with the tracebacks, for the
    work folder.
    """

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


# -- the suite -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Profile:
    """What the bounded sample says about each column (real values: keep it in the work folder)."""

    rows: int
    null_fraction: dict[str, float]
    ranges: dict[str, tuple[float, float]]
    categories: dict[str, list]
    unseen: dict[str, float]  # Good-Turing estimate of the share of values outside ``categories``
    unique: tuple[str, ...]


def profile_sample(sample: pa.Table, schema: Schema, max_categories: int = 1_000) -> Profile:
    """Null fractions, numeric ranges, category sets and unique keys of the sample."""
    rows = max(sample.num_rows, 1)
    null_fraction, ranges, categories, unseen, unique = {}, {}, {}, {}, []
    for spec in schema.columns:
        column = sample[spec.name]
        null_fraction[spec.name] = column.null_count / rows
        if spec.kind is ColumnKind.NUMERICAL:
            bounds = pc.min_max(pc.cast(column, pa.float64()))
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            if low is not None and math.isfinite(low) and math.isfinite(high):
                ranges[spec.name] = (low, high)
        elif spec.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
            counts = pc.value_counts(pc.drop_null(_plain(column)))
            if len(counts) <= max_categories:
                values = counts.field("values").to_pylist()
                categories[spec.name] = sorted(values, key=lambda v: (str(type(v)), v))
                unseen[spec.name] = _unseen_share(counts.field("counts").to_numpy())
        elif spec.kind is ColumnKind.IDENTIFIER and spec.name != schema.entity_key:
            # A key distinct on nearly every sampled row is meant to be unique; its few repeats are errors.
            non_null = len(column) - column.null_count
            if non_null and pc.count_distinct(column).as_py() >= UNIQUE_SHARE * non_null:
                unique.append(spec.name)
    return Profile(sample.num_rows, null_fraction, ranges, categories, unseen, tuple(unique))


def build_expectations(schema: Schema, profile: Profile, options: ValidationOptions) -> list[dict]:
    """The schema's suite, as GX expectation configurations (``{"type": ..., "kwargs": ...}``)."""
    built: list[dict] = []
    for spec in schema.columns:
        name = spec.name
        built.append(_expect("expect_column_to_exist", column=name))
        built.append(_expect("expect_column_values_to_be_in_type_list", column=name, type_list=_type_list(spec.arrow)))
        if name == schema.entity_key:
            built.append(_expect("expect_column_values_to_not_be_null", column=name))
        else:
            allowed = min(1.0, profile.null_fraction.get(name, 0.0) + options.null_tolerance)
            if allowed < 1.0:
                built.append(_expect("expect_column_values_to_not_be_null", column=name, mostly=round(1 - allowed, 6)))
        mostly = round(1 - options.value_tolerance, 6)
        if name in profile.ranges:
            low, high = profile.ranges[name]
            margin = (high - low) * options.range_margin
            built.append(
                _expect(
                    "expect_column_values_to_be_between",
                    column=name,
                    min_value=low - margin,
                    max_value=high + margin,
                    mostly=mostly,
                )
            )
        if name in profile.categories:
            share = min(1.0, options.value_tolerance + profile.unseen.get(name, 0.0))
            built.append(
                _expect(
                    "expect_column_values_to_be_in_set",
                    column=name,
                    value_set=profile.categories[name],
                    mostly=round(1 - share, 6),
                )
            )
        if name in profile.unique:
            built.append(_expect(UNIQUE, column=name))
    built.append(_expect(ROW_COUNT, min_value=options.min_rows, max_value=options.max_rows))
    return built


def load_suite(path: str | Path) -> list[dict]:
    """The expectations of a GX suite JSON file (1.x ``type`` or 0.x ``expectation_type`` keys)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"expectation suite not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    items = data.get("expectations") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a suite with an 'expectations' list")
    suite = []
    for n, item in enumerate(items):
        kind = item.get("type") or item.get("expectation_type") if isinstance(item, dict) else None
        if not kind:
            raise ConfigError(f"{path}: expectation {n} has no 'type'")
        suite.append(_expect(kind, **item.get("kwargs", {})))
    _check_known(suite, path)
    return suite


def merge_suites(built: list[dict], user: list[dict]) -> list[dict]:
    """``built`` with the user's expectations replacing those of the same type and column."""
    replaced = {_identity(e) for e in user}
    return [e for e in built if _identity(e) not in replaced] + user


def split_table_level(expectations: list[dict]) -> tuple[list[dict], list[dict]]:
    """(per-partition expectations, whole-extract row-count expectations)."""
    per_partition = [e for e in expectations if e["type"] != ROW_COUNT]
    return per_partition, [e for e in expectations if e["type"] == ROW_COUNT]


# -- validating one partition ----------------------------------------------------------------
@dataclass
class Outcome:
    """One expectation on one partition: counts only, never values."""

    expectation: str
    column: str | None
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    missing_count: int | None = None
    mostly: float | None = None
    observed: str | None = None  # a type name or a row count, never a data value
    detail: str | None = None  # what the gate says about a failure it judged itself (no values)


def validate_table(table: pa.Table, expectations: list[dict]) -> tuple[list[Outcome], dict]:
    """Run the expectations on ``table`` with GX's pandas engine.

    Returns:
        (outcomes with counts only, GX's full JSON result, which may quote values).

    Raises:
        ExpectationCrashed: GX raised inside an expectation (a bug, not the data failing).
    """
    alias = {name: f"c{i}" for i, name in enumerate(table.column_names)}
    name_of = {a: name for name, a in alias.items()}
    runnable, missing = [], []
    for expectation in expectations:
        absent = [c for c in _columns_of(expectation) if c not in alias]
        if absent and expectation["type"] != "expect_column_to_exist":
            missing.append(_missing(expectation, absent))
        else:
            runnable.append(_renamed(expectation, lambda c: alias.get(c, c)))
    aliased = table.rename_columns([alias[c] for c in table.column_names])
    # Checks of a column's presence and dtype read no values: they run on no rows, in the dtypes
    # the suite names; the value checks on every row, in dtypes GX checks quickly (see _gx_frame).
    by_types = [e for e in runnable if e["type"] in _SCHEMA_CHECKS]
    by_values = [e for e in runnable if e["type"] not in _SCHEMA_CHECKS]
    results = [_validated(_gx_frame(aliased, for_values=True), by_values)] if by_values else []
    if by_types:
        results.append(_validated(_gx_frame(aliased.slice(0, 0), for_values=False), by_types))
    checked = [r for result in results for r in result.results]
    full = _joined(results, checked).to_json_dict()
    full["synth_column_aliases"] = name_of  # GX saw the columns under these names
    crashed = [_crash(r, name_of) for r in checked if _exceptions(r)]
    if crashed:
        raise ExpectationCrashed(
            f"Great Expectations raised inside {'; '.join(crashed)}. This is a bug in the validation step, "
            "not a finding about the data; GX's tracebacks are saved with the partition's validation results "
            "in the work folder.",
            full,
        )
    return [_outcome(r, name_of) for r in checked] + missing, full


def _validated(frame: pd.DataFrame, expectations: list[dict]):
    """GX's result of ``expectations`` on ``frame``."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=_SUITE_NAME, expectations=[_domain(e) for e in expectations])
    with pd.option_context("mode.string_storage", "pyarrow"):  # so the "StringDtype" type check matches
        return _validator(frame).validate_expectation_suite(suite)


def _joined(results: list, checked: list):
    """One partition's GX validations as one GX result: every expectation's, one verdict, GX's statistics."""
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    statistics = calc_validation_statistics(checked)._asdict()
    return ExpectationSuiteValidationResult(
        success=statistics.pop("success"),
        results=checked,
        suite_name=_SUITE_NAME,
        statistics=statistics,
        meta=results[0].meta if results else None,
    )


def _validator(frame: pd.DataFrame):
    """GX's validator of one batch: the frame loaded once.

    ``batch_definition.get_batch(...).validate(...)`` loads the frame twice, and GX
    fingerprints every loaded frame (a hash of every value: ~0.7 s per 250,000 rows of
    diabetes-130); the validator that ``Batch.validate`` and ``ValidationDefinition.run``
    build loads it once.
    """
    from great_expectations.validator.v1_validator import Validator

    return Validator(_batch_definition(), result_format=_RESULT_FORMAT, batch_parameters={"dataframe": frame})


@functools.cache
def _batch_definition():
    """One ephemeral GX context per process (workers validate many partitions)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("synth").add_dataframe_asset("partition")
    return asset.add_batch_definition_whole_dataframe("whole")


def _outcome(result: Any, name_of: dict[str, str]) -> Outcome:
    config = result.expectation_config
    details = result.result or {}
    observed = details.get("observed_value")
    column = config.kwargs.get("column")
    return Outcome(
        expectation=config.type,
        column=name_of.get(column, column),
        success=bool(result.success),
        element_count=details.get("element_count"),
        unexpected_count=details.get("unexpected_count"),
        missing_count=details.get("missing_count"),
        mostly=config.kwargs.get("mostly"),
        observed=str(observed) if isinstance(observed, (str, int)) and config.type in _COUNTS_OR_TYPES else None,
    )


def _exceptions(result: Any) -> list[dict]:
    """The exceptions GX caught while evaluating an expectation (its own, or one per metric)."""
    info = result.exception_info or {}
    if "raised_exception" in info:
        info = {"expectation": info}
    return [e for e in info.values() if isinstance(e, dict) and e.get("raised_exception")]


def _crash(result: Any, name_of: dict[str, str]) -> str:
    """``expectation on column 'x' (IndexError)``: the exceptions' types, not their text (it may quote a value)."""
    config = result.expectation_config
    column = config.kwargs.get("column")
    kinds = []
    for exception in _exceptions(result):
        last = str(exception.get("exception_traceback") or "").strip().splitlines()[-1:] or [""]
        match = re.match(r"^([\w.]+)(:|$)", last[0])
        kinds.append(match.group(1) if match else "an exception")
    return f"{config.type} on column {name_of.get(column, column)!r} ({', '.join(dict.fromkeys(kinds))})"


# -- the gate ---------------------------------------------------------------------------------
@dataclass
class GateFailure:
    """A failed expectation summed over partitions."""

    expectation: str
    column: str | None
    partitions_failed: int
    unexpected_count: int | None
    element_count: int | None
    detail: str = ""


@dataclass
class GateResult:
    """Whether the extract passed, with every failure named by expectation, column and counts."""

    success: bool
    rows: int
    partitions: int
    partitions_validated: int
    expectations: int
    failures: list[GateFailure] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GateResult:
        return cls(**{**data, "failures": [GateFailure(**f) for f in data["failures"]]})

    def markdown(self) -> str:
        """A readable report: one table row per failed expectation (counts only)."""
        verdict = "passed" if self.success else "FAILED"
        lines = [
            f"# Extract validation {verdict}",
            "",
            f"{self.rows:,} rows in {self.partitions} partitions; {self.partitions_validated} validated "
            f"against {self.expectations} expectations.",
            "",
        ]
        if self.failures:
            lines += [
                "| expectation | column | partitions failed | unexpected | of | detail |",
                "| --- | --- | ---: | ---: | ---: | --- |",
            ]
            for f in self.failures:
                lines.append(
                    f"| {f.expectation} | {f.column or '(table)'} | {f.partitions_failed} | "
                    f"{_count(f.unexpected_count)} | {_count(f.element_count)} | {f.detail} |"
                )
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One line per failure, for an error message."""
        return "; ".join(
            f"{f.expectation} on {f.column or 'the table'}: {_count(f.unexpected_count)} unexpected of "
            f"{_count(f.element_count)} in {f.partitions_failed} partition(s)"
            f"{' (' + f.detail + ')' if f.detail else ''}"
            for f in self.failures
        )


def gate_result(
    outcomes: dict[int, list[Outcome]],
    rows: int,
    partitions: int,
    row_counts: list[dict],
    duplicates: dict[str, int],
    expectations: int,
    cast_failures: dict[str, int] | None = None,
) -> GateResult:
    """The extract's verdict from its partitions' outcomes and the whole-extract checks.

    An expectation with a ``mostly`` is judged on the extract, as GX judges one batch: its
    unexpected values summed over the validated partitions must be at most ``1 - mostly``
    of their (non-missing) values. Partitions may differ (an extract sorted by date has
    early partitions with more gaps) without failing the gate. Expectations without
    counts (a column exists, a type) fail when any partition fails them.
    """
    grouped: dict[tuple, list[Outcome]] = {}
    for outcome_list in outcomes.values():
        for o in outcome_list:
            grouped.setdefault((o.expectation, o.column), []).append(o)
    failures: dict[tuple, GateFailure] = {}
    for key, group in grouped.items():
        failed = [o for o in group if not o.success]
        if not failed:
            continue
        counted = all(o.unexpected_count is not None and o.element_count is not None for o in group)
        unexpected = sum(o.unexpected_count for o in group) if counted else None
        judged = sum(o.element_count - (o.missing_count or 0) for o in group) if counted else None
        if counted and unexpected <= (1 - (group[0].mostly or 1.0)) * judged + 1e-9:
            continue
        detail = next((o.detail for o in failed if o.detail), None) or next(
            (f"observed {o.observed}" for o in failed if o.observed), ""
        )
        failures[key] = GateFailure(key[0], key[1], len(failed), unexpected, judged, detail)
    for expectation in row_counts:
        low, high = expectation["kwargs"].get("min_value"), expectation["kwargs"].get("max_value")
        if (low is not None and rows < low) or (high is not None and rows > high):
            failures[(ROW_COUNT, None)] = GateFailure(
                ROW_COUNT, None, partitions, None, rows, f"{rows:,} rows; expected between {low} and {high}"
            )
    for column, count in (cast_failures or {}).items():
        # Values the schema's type cannot hold (nulls now): also in partitions GX did not see.
        failure = failures.setdefault((TYPE_LIST, column), GateFailure(TYPE_LIST, column, 0, 0, rows))
        failure.unexpected_count = max(failure.unexpected_count or 0, count)
        failure.detail = f"{count:,} values could not be cast to the schema's type"
    for column, count in duplicates.items():
        if count:
            failure = failures.setdefault((UNIQUE, column), GateFailure(UNIQUE, column, 0, 0, rows))
            failure.unexpected_count = max(failure.unexpected_count or 0, count)
            failure.detail = f"{count:,} values repeat another row's (within or across partitions)"
    return GateResult(
        success=not failures,
        rows=rows,
        partitions=partitions,
        partitions_validated=len(outcomes),
        expectations=expectations,
        failures=list(failures.values()),
    )


# -- helpers ----------------------------------------------------------------------------------
def _expect(kind: str, **kwargs: Any) -> dict:
    return {"type": kind, "kwargs": {k: v for k, v in kwargs.items() if v is not None}}


def _columns_of(expectation: dict) -> list[str]:
    kwargs = expectation["kwargs"]
    named = [kwargs[k] for k in _COLUMN_KWARGS if k in kwargs]
    return named + [c for k in _COLUMN_LIST_KWARGS for c in kwargs.get(k) or []]


def _renamed(expectation: dict, rename) -> dict:
    """The expectation with every column it names passed through ``rename``."""
    kwargs = dict(expectation["kwargs"])
    for key in _COLUMN_KWARGS:
        if key in kwargs:
            kwargs[key] = rename(kwargs[key])
    for key in _COLUMN_LIST_KWARGS:
        if kwargs.get(key) is not None:
            kwargs[key] = [rename(c) for c in kwargs[key]]
    return {"type": expectation["type"], "kwargs": kwargs}


def _missing(expectation: dict, absent: list[str]) -> Outcome:
    """A failed outcome for an expectation on a column the partition does not have."""
    kwargs = expectation["kwargs"]
    return Outcome(
        expectation=expectation["type"],
        column=kwargs.get("column", absent[0]),
        success=False,
        mostly=kwargs.get("mostly"),
        detail=f"column {absent[0]!r} is missing from the partition",
    )


def _identity(expectation: dict) -> tuple:
    return expectation["type"], expectation["kwargs"].get("column")


def _domain(expectation: dict):
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    return ExpectationConfiguration(type=expectation["type"], kwargs=expectation["kwargs"]).to_domain_obj()


def _check_known(suite: list[dict], path: Path) -> None:
    for expectation in suite:
        try:
            _domain(expectation)
        except Exception as exc:  # GX raises several types for unknown names and bad kwargs
            raise ConfigError(f"{path}: expectation {expectation['type']!r} is not usable: {exc}") from None


def _type_list(dtype: pa.DataType) -> list[str]:
    """pandas dtype names (as GX compares them) of the schema type's family, in the GX frame."""
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype):
        return _INT_TYPES
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return _FLOAT_TYPES + _INT_TYPES
    if pa.types.is_boolean(dtype):
        return ["BooleanDtype"]
    if pa.types.is_temporal(dtype):
        return _TIME_TYPES
    return ["StringDtype"]


def _gx_frame(table: pa.Table, *, for_values: bool) -> pd.DataFrame:
    """pandas for GX: for the type checks, the dtypes the suite names; for the value checks, fast ones.

    Type checks (``for_values=False``): text as pandas' Arrow strings, integers as its
    nullable integers, booleans nullable, whatever the values. Value checks: GX filters
    the whole frame once per column expectation (to drop that column's missing values)
    and fingerprints it once per batch, so text goes as categoricals (codes move, not
    strings), and integers as NumPy's unless the column has gaps (GX compares NumPy's to
    a range in one vectorised step, nullable ones one Python call per value). GX's type
    check cannot name a categorical, hence the two frames.
    """
    columns = []
    for column in table.columns:
        dtype = column.type
        if pa.types.is_dictionary(dtype):
            column = column.cast(dtype.value_type)
        elif pa.types.is_timestamp(dtype) and dtype.tz is not None:
            column = column.cast(pa.timestamp(dtype.unit))  # the same instants, naive UTC
        elif pa.types.is_decimal(dtype):
            column = column.cast(pa.float64())
        elif pa.types.is_null(dtype):
            column = column.cast(pa.string())
        if for_values and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = column.dictionary_encode()
        columns.append(column)
    plain = pa.Table.from_arrays(columns, names=table.column_names)
    if not for_values:
        return plain.to_pandas(types_mapper=_SUITE_TYPES.get, date_as_object=False)
    frame = plain.to_pandas(types_mapper=_BOOLEANS.get, date_as_object=False)
    for name, column in zip(plain.column_names, plain.columns):
        if pa.types.is_integer(column.type) and column.null_count:  # NumPy's integers cannot hold a gap
            frame[name] = column.to_pandas(types_mapper=_SUITE_TYPES.get)
    return frame


_BOOLEANS = {pa.bool_(): pd.BooleanDtype()}
_SUITE_TYPES = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
    **_BOOLEANS,
    **{
        getattr(pa, f"{u}int{b}")(): getattr(pd, f"{u.upper()}Int{b}Dtype")()
        for u in ("", "u")
        for b in (8, 16, 32, 64)
    },
}


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _unseen_share(counts) -> float:
    """How much of the column may hold values the sample never showed: an upper bound.

    Good (1953): the chance that the next value is one never seen is about the number of
    values seen once over the sample size. Three standard errors are added (and one
    singleton assumed), so small samples of long-tailed columns do not fail the gate by
    chance; large samples give a tight bound.
    """
    n = max(int(counts.sum()), 1)
    estimate = (int((counts == 1).sum()) + 1) / n
    return min(1.0, estimate + 3 * math.sqrt(estimate * (1 - min(estimate, 1.0)) / n))


def _add(total: int | None, value: int | None) -> int | None:
    return None if value is None else (total or 0) + value


def _count(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"
