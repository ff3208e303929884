"""The demo extract: MIMIC-III tables joined into one patient-episode table.

nhsx/SynthVAE trained on a single table it built from full MIMIC-III: admissions
joined to patients and ICU stays, then to the stays' charted events (item label,
value, unit, chart time), several rows per patient. This module builds the same
shape from the MIMIC-III Clinical Database Demo, whose CHARTEVENTS is too large to
ship, so the event table is OUTPUTEVENTS: same layout (``itemid`` named through
``D_ITEMS``, ``value``, ``valueuom``, ``charttime``), and SynthVAE loaded it too.

Grain: one row per ICU output event (``icustay_id`` x ``charttime``), carrying the
patient, admission and ICU-stay facts it belongs to. Unlike SynthVAE we join ICU stays
to admissions on ``hadm_id`` (it joined on the patient alone, pairing every admission
with every stay) and keep MIMIC's own dates and missing values rather than re-drawing
them at random: the synthesizer should meet real gaps and real date arithmetic.

The same code reads the demo (lower-case headers, ``.csv``) and full MIMIC-III
(upper-case headers, often ``.csv.gz``). Tables are scanned lazily, only the listed
columns are read, and the join is collected with polars' streaming engine, so the
4-million-row OUTPUTEVENTS of full MIMIC is never loaded whole.

Reference: Johnson AEW et al. MIMIC-III, a freely accessible critical care database.
Sci Data 2016;3:160035.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from synth.errors import SourceError
from synth.io.atomic import write_parquet_atomic

DEMO_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "mimic3_demo"
DEMO_CONFIG = Path(__file__).resolve().parent / "mimic3.yaml"

#: Ages above this are top-coded (see :func:`_age_at_admission`).
AGE_TOP_CODE = 90

_DATETIME = pl.Datetime("us")
_Dtype = pl.DataType | type[pl.DataType]
_MIMIC_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Every table the builder reads and the columns (lower-case) it needs from each, with
# the type each is cast to. Reading everything as text and casting explicitly keeps the
# types identical on the demo and on full MIMIC, where inference sees other first rows.
TABLES: dict[str, dict[str, _Dtype]] = {
    "PATIENTS": {"subject_id": pl.Int64, "gender": pl.Utf8, "dob": _DATETIME, "dod": _DATETIME},
    "ADMISSIONS": {
        "subject_id": pl.Int64,
        "hadm_id": pl.Int64,
        "admittime": _DATETIME,
        "dischtime": _DATETIME,
        "deathtime": _DATETIME,
        "admission_type": pl.Utf8,
        "admission_location": pl.Utf8,
        "discharge_location": pl.Utf8,
        "insurance": pl.Utf8,
        "language": pl.Utf8,
        "marital_status": pl.Utf8,
        "ethnicity": pl.Utf8,
    },
    "ICUSTAYS": {
        "hadm_id": pl.Int64,
        "icustay_id": pl.Int64,
        "first_careunit": pl.Utf8,
        "intime": _DATETIME,
        "outtime": _DATETIME,
        "los": pl.Float64,
    },
    "OUTPUTEVENTS": {
        "row_id": pl.Int64,
        "icustay_id": pl.Int64,
        "charttime": _DATETIME,
        "itemid": pl.Int64,
        "value": pl.Float64,
        "valueuom": pl.Utf8,
    },
    "D_ITEMS": {"itemid": pl.Int64, "label": pl.Utf8},
}

#: Output columns in order: keys, patient, admission, ICU stay, event.
COLUMNS = (
    "subject_id", "hadm_id", "icustay_id",
    "gender", "dob", "dod", "age",
    "admittime", "dischtime", "deathtime", "admission_type", "admission_location",
    "discharge_location", "insurance", "language", "marital_status", "ethnicity",
    "first_careunit", "intime", "outtime", "los",
    "charttime", "label", "value", "valueuom",
)  # fmt: skip

#: Columns where the demo has genuine gaps (``dod`` is complete in the demo, whose
#: patients all died, but has gaps in full MIMIC-III).
MISSING_IN_DEMO = ("deathtime", "language", "marital_status", "value", "valueuom")


def build_episode_table(mimic_dir: str | Path, *, max_events_per_stay: int | None = None) -> pa.Table:
    """Join MIMIC-III tables into one row per ICU output event.

    Args:
        mimic_dir: folder holding PATIENTS, ADMISSIONS, ICUSTAYS, OUTPUTEVENTS and
            D_ITEMS as ``.csv`` or ``.csv.gz``, headers in either case.
        max_events_per_stay: keep only the first ``n`` events (by chart time) of each
            ICU stay, to bound the table on full MIMIC-III; ``None`` keeps them all.

    Returns:
        The table with :data:`COLUMNS`, sorted by ``subject_id``, ``hadm_id``,
        ``icustay_id``, ``charttime`` and the event's source row id. Ids and ``age``
        are int64, ``los`` and ``value`` float64, times ``timestamp[us]``, text strings.

    Raises:
        SourceError: a table or a needed column is missing, or a value does not parse.
    """
    folder = Path(mimic_dir)
    if not folder.is_dir():
        raise SourceError(f"MIMIC-III folder not found: {folder}")
    scans = {name: scan_table(folder, name, columns) for name, columns in TABLES.items()}
    events = first_events(scans["OUTPUTEVENTS"], max_events_per_stay)
    joined = (
        scans["ADMISSIONS"]
        .join(scans["PATIENTS"], on="subject_id", how="inner")
        .join(scans["ICUSTAYS"], on="hadm_id", how="inner")
        .join(events, on="icustay_id", how="inner")
        .join(scans["D_ITEMS"], on="itemid", how="left")
        .with_columns(age=_age_at_admission())
        .sort(["subject_id", "hadm_id", "icustay_id", "charttime", "row_id"], nulls_last=True)
        .select(COLUMNS)
    )
    try:
        return joined.collect(engine="streaming").to_arrow()
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise SourceError(f"cannot read the MIMIC-III tables in {folder}: {exc}") from None


def write_episode_table(
    mimic_dir: str | Path, out_path: str | Path, *, max_events_per_stay: int | None = None
) -> Path:
    """Build the episode table and write it to ``out_path`` as Parquet, atomically.

    Args:
        mimic_dir: the MIMIC-III folder (see :func:`build_episode_table`).
        out_path: the Parquet file to write; its folder is created if needed.
        max_events_per_stay: as in :func:`build_episode_table`.

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.
    """
    return write_parquet_atomic(out_path, build_episode_table(mimic_dir, max_events_per_stay=max_events_per_stay))


def scan_table(folder: Path, table: str, columns: dict[str, _Dtype]) -> pl.LazyFrame:
    """Lazily read ``columns`` of one table, headers lower-cased, values typed."""
    path = _find_table(folder, table)
    # All text first: the header case is unknown until read, and casting ourselves
    # keeps types stable whatever rows schema inference would have looked at.
    lazy = pl.scan_csv(path, infer_schema=False)
    header = {name.lower(): name for name in lazy.collect_schema().names()}
    missing = [name for name in columns if name not in header]
    if missing:
        raise SourceError(
            f"{path.name} in {folder} lacks column(s) {', '.join(missing)} "
            f"(it has: {', '.join(sorted(header))})"
        )
    return lazy.select(_typed(pl.col(header[name]), dtype).alias(name) for name, dtype in columns.items())


def _find_table(folder: Path, table: str) -> Path:
    """The file holding ``table``: MIMIC names them upper case, some copies lower case."""
    candidates = [f"{stem}{suffix}" for stem in (table, table.lower()) for suffix in (".csv", ".csv.gz")]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise SourceError(f"MIMIC-III table {table} not found in {folder} (looked for {', '.join(candidates)})")


def _typed(column: pl.Expr, dtype: _Dtype) -> pl.Expr:
    if dtype == _DATETIME:
        return column.str.to_datetime(_MIMIC_TIME_FORMAT, time_unit="us")
    return column.cast(dtype)


def first_events(events: pl.LazyFrame, limit: int | None) -> pl.LazyFrame:
    """Events with an ICU stay, optionally only the first ``limit`` of each stay."""
    # A handful of output events carry no icustay_id; they cannot be placed in a stay.
    events = events.filter(pl.col("icustay_id").is_not_null())
    if limit is None:
        return events
    if limit < 1:
        raise ValueError(f"max_events_per_stay must be at least 1, got {limit}")
    position_in_stay = pl.int_range(pl.len()).over("icustay_id")
    return events.sort(["icustay_id", "charttime", "row_id"]).filter(position_in_stay < limit)


def _age_at_admission() -> pl.Expr:
    """Completed years between ``dob`` and ``admittime``, top-coded at 90.

    MIMIC-III hides the age of patients older than 89 by moving their ``dob`` about 300
    years back, so their raw age is ~300. Following HIPAA's top-coding, which MIMIC
    applies, every age above 89 becomes :data:`AGE_TOP_CODE` (read it as "90 or over");
    ``dob`` itself is kept as published.
    """
    admit, dob = pl.col("admittime").dt, pl.col("dob").dt

    def month_day(part) -> pl.Expr:  # month() and day() are Int8: widen before * 100
        return part.month().cast(pl.Int32) * 100 + part.day().cast(pl.Int32)

    before_birthday = month_day(admit) < month_day(dob)
    years = (admit.year() - dob.year()).cast(pl.Int64) - before_birthday.cast(pl.Int64)
    return pl.when(years > AGE_TOP_CODE - 1).then(AGE_TOP_CODE).otherwise(years).cast(pl.Int64)
