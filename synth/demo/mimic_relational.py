"""The MIMIC-III demo as a relational extract: PATIENTS -> ADMISSIONS -> ICUSTAYS -> OUTPUTEVENTS.

The flat demo (:mod:`synth.demo.mimic`) joins these tables into one row per event; here
they stay four tables with their keys, as a trust's data platform would hand them over:

* ``patients`` (primary key ``subject_id``): gender, date of birth, date of death;
* ``admissions`` (``hadm_id``; ``subject_id`` -> patients): times, type, location, insurance...;
* ``icustays`` (``icustay_id``; ``hadm_id`` -> admissions): care unit, in and out times, length of stay;
* ``outputevents`` (``row_id``; ``icustay_id`` -> icustays): chart time, the item's label
  (named through ``D_ITEMS``), value and unit; optionally only the first events of each stay.

Each table keeps only the key of its direct parent (ADMISSIONS' ``subject_id``,
ICUSTAYS' ``hadm_id``...), since the relational model supports one parent per table;
MIMIC's redundant grandparent keys (ICUSTAYS' ``subject_id``) are not read. Columns are
read and typed as the flat demo reads them (same code, same types).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa

from synth.demo.mimic import DEMO_DATA_DIR, TABLES, first_events, scan_table
from synth.errors import SourceError
from synth.io.atomic import write_parquet_atomic, write_text_atomic
from synth.relational.schema import RelationalSchema, parse_relational

#: The tree, in the config's shape.
CONFIG = {
    "tables": {
        "patients": {"primary_key": "subject_id"},
        "admissions": {"primary_key": "hadm_id", "foreign_keys": {"subject_id": "patients.subject_id"}},
        "icustays": {"primary_key": "icustay_id", "foreign_keys": {"hadm_id": "admissions.hadm_id"}},
        "outputevents": {"primary_key": "row_id", "foreign_keys": {"icustay_id": "icustays.icustay_id"}},
    }
}


def build_relational_tables(
    mimic_dir: str | Path = DEMO_DATA_DIR, *, max_events_per_stay: int | None = None
) -> tuple[dict[str, pa.Table], RelationalSchema]:
    """The four tables as Arrow tables, and their schema.

    Args:
        mimic_dir: folder holding PATIENTS, ADMISSIONS, ICUSTAYS, OUTPUTEVENTS and D_ITEMS
            (``.csv`` or ``.csv.gz``, headers in either case).
        max_events_per_stay: keep only the first ``n`` events (by chart time) of each stay.

    Returns:
        ``({name: table}, schema)``; rows sorted by their keys, events by stay and time.

    Raises:
        SourceError: a table or column is missing, a value does not parse.
    """
    folder = Path(mimic_dir)
    if not folder.is_dir():
        raise SourceError(f"MIMIC-III folder not found: {folder}")
    scans = {name: scan_table(folder, name, columns) for name, columns in TABLES.items()}
    events = (
        first_events(scans["OUTPUTEVENTS"], max_events_per_stay)
        .join(scans["D_ITEMS"], on="itemid", how="left")
        .sort(["icustay_id", "charttime", "row_id"], nulls_last=True)
        .select("row_id", "icustay_id", "charttime", "label", "value", "valueuom")
    )
    lazy = {
        "patients": scans["PATIENTS"].sort("subject_id"),
        "admissions": scans["ADMISSIONS"].sort("hadm_id"),
        "icustays": scans["ICUSTAYS"].sort("icustay_id"),
        "outputevents": events,
    }
    try:
        tables = {name: frame.collect(engine="streaming").to_arrow() for name, frame in lazy.items()}
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError) as exc:
        raise SourceError(f"cannot read the MIMIC-III tables in {folder}: {exc}") from None
    config = parse_relational(CONFIG, origin="the relational MIMIC-III demo")
    return tables, RelationalSchema.from_config(config, tables)


#: The demo's config (tables, keys, model, gate); its sources are read from beside a copy of it.
DEMO_RELATIONAL_CONFIG = Path(__file__).resolve().parent / "mimic3_relational.yaml"


def write_relational_demo(
    mimic_dir: str | Path, folder: str | Path, *, max_events_per_stay: int | None = None
) -> Path:
    """Write the four tables as ``folder/<table>.parquet`` and the demo's config beside them.

    The config names its sources relative to its own folder, so the copy in ``folder``
    reads these files (a config's relative paths may not leave its folder).

    Returns:
        The config's path in ``folder``.
    """
    folder = Path(folder)
    tables, _ = build_relational_tables(mimic_dir, max_events_per_stay=max_events_per_stay)
    for name, table in tables.items():
        write_parquet_atomic(folder / f"{name}.parquet", table)
    return write_text_atomic(folder / DEMO_RELATIONAL_CONFIG.name, DEMO_RELATIONAL_CONFIG.read_text(encoding="utf-8"))
