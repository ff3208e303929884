"""The patient layout: static columns, date links, exact split/join, ages, and config errors."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from synth.config import parse_config
from synth.entity import (
    ANCHOR,
    ROWS,
    DateLink,
    EntityPlan,
    derive_age,
    join_levels,
    level_schemas,
    outside_date_ranges,
    plan_entities,
    position_features,
    repair_orders,
    split_levels,
)
from synth.errors import ConfigError
from synth.frames import to_model_frame
from synth.schema import infer_schema


def _episodes(patients: int = 60, seed: int = 0) -> pa.Table:
    """Patients with 1-5 admissions: static sex/birth date, admission -> discharge, codes."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(patients):
        born = dt.datetime(1930, 1, 1) + dt.timedelta(days=int(rng.integers(0, 20_000)))
        sex = ["F", "M"][p % 2]
        admit = dt.datetime(2150, 1, 1, 8, 0) + dt.timedelta(minutes=int(rng.integers(0, 500_000)))
        for _ in range(int(rng.integers(1, 6))):
            stay = dt.timedelta(minutes=int(rng.integers(60, 20_000)))
            rows.append(
                {
                    "pid": f"P{p:04d}",
                    "sex": sex,
                    "born": born,
                    "admit": admit,
                    "discharge": admit + stay,
                    "ward": ["ICU", "MED", "SURG"][int(rng.integers(0, 3))],
                    "lab": None if rng.random() < 0.2 else float(np.round(rng.normal(5, 1), 1)),
                }
            )
            admit = admit + stay + dt.timedelta(days=int(rng.integers(1, 400)))
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def layout():
    table = _episodes()
    config = parse_config({"entity_key": "pid"})
    schema = infer_schema(table, config)
    frame = to_model_frame(table, schema)
    keys = table["pid"].to_numpy(zero_copy_only=False)
    return table, schema, frame, keys, plan_entities(frame, keys, schema, config)


def test_static_columns_and_date_links_are_found(layout):
    _, _, _, _, plan = layout
    assert set(plan.static) == {"sex", "born"}
    assert set(plan.row) == {"admit", "discharge", "ward", "lab"}
    links = {link.column: link.parent for link in plan.links}
    assert links["discharge"] == "admit"  # admission -> discharge
    # the first admission is the patient's anchor, at its age after birth; later ones follow it
    assert links["admit"] == ANCHOR + "admit" and links[ANCHOR + "admit"] == "born"
    assert plan.units["admit"] == 60 * 10**9 and plan.units["born"] == 86_400 * 10**9


def test_split_then_join_gives_back_every_value(layout):
    _, schema, frame, keys, plan = layout
    levels = split_levels(frame, keys, plan)
    assert len(levels.patients) == 60 and np.exp(levels.patients[ROWS]).round().sum() == len(frame)
    joined = join_levels(levels.patients, levels.rows, levels.patient_of_row, plan)
    order = np.lexsort((frame["admit"].to_numpy(), keys))
    expected = frame.iloc[order].reset_index(drop=True)
    for name in frame.columns:
        pd.testing.assert_series_equal(joined[name], expected[name], check_names=False, check_dtype=False)


def test_dates_are_steps_after_their_predecessor(layout):
    _, _, frame, keys, plan = layout
    levels = split_levels(frame, keys, plan)
    stay_minutes = levels.rows["discharge"]
    assert (stay_minutes >= 60).all() and stay_minutes.dtype == np.float64
    patient_schema, row_schema = level_schemas(layout[1], plan)
    assert row_schema["discharge"].kind.value == "numerical" and patient_schema[ROWS].kind.value == "numerical"


def test_roots_hang_off_a_patient_anchor_starting_at_zero():
    table = _episodes().drop(["born"])
    config = parse_config({"entity_key": "pid"})
    schema = infer_schema(table, config)
    frame = to_model_frame(table, schema)
    keys = table["pid"].to_numpy(zero_copy_only=False)
    plan = plan_entities(frame, keys, schema, config)
    assert {link.column: link.parent for link in plan.links}["admit"] == ANCHOR + "admit"
    levels = split_levels(frame, keys, plan)
    offsets = levels.rows["admit"].groupby(levels.patient_of_row).min()
    assert (offsets == 0).all()  # each patient's first admission is its anchor


def test_steps_survive_300_year_gaps_and_extreme_generated_values():
    born = pd.Series(pd.to_datetime(["1844-07-18", "2100-01-01"]))
    admitted = pd.Series(pd.to_datetime(["2150-03-01 10:00", "2150-03-01 10:00"]))
    ages = derive_age(born, admitted, top_code=90)
    assert ages.tolist() == [90.0, 50.0]  # top-coded, not overflowed


def test_order_repair_carries_linked_dates_along():
    """discharge -> death is a link (death stored after discharge); an order moves discharge
    forward, and the death time must follow it or the link's order breaks."""
    plan = EntityPlan(
        key="pid", static=(), row=("chart", "discharge", "death"),
        links=(DateLink("death", "discharge", 60 * 10**9),),
        orders=(("chart", "discharge"),),
        units={"chart": 60 * 10**9, "discharge": 60 * 10**9, "death": 60 * 10**9},
    )
    frame = pd.DataFrame({
        "chart": pd.to_datetime(["2150-01-05 12:00", "2150-01-01 08:00"]),
        "discharge": pd.to_datetime(["2150-01-03 10:00", "2150-01-02 09:00"]),
        "death": pd.to_datetime(["2150-01-04 00:00", pd.NaT]),
    })
    repaired = repair_orders(frame, np.array([0, 1]), plan)
    assert repaired["discharge"].tolist() == [pd.Timestamp("2150-01-05 12:00"), pd.Timestamp("2150-01-02 09:00")]
    assert repaired["death"].iloc[0] == pd.Timestamp("2150-01-05 12:00") and pd.isna(repaired["death"].iloc[1])


def test_dates_outside_the_real_range_are_found():
    plan = EntityPlan(key="pid", static=(), row=("seen",), date_ranges={"seen": [0, 10**18]})
    frame = pd.DataFrame({"seen": pd.to_datetime([5 * 10**17, 2 * 10**18, None])})
    assert outside_date_ranges(frame, plan, ["seen"]).tolist() == [False, True, False]


def test_position_features():
    features = position_features(np.array([0, 0, 0, 1]))
    assert features[:, 0].tolist() == [0.0, 0.5, 1.0, 0.0]
    assert features[:, 1].tolist() == [1, 0, 0, 1] and features[:, 2].tolist() == [0, 0, 1, 1]


def test_age_follows_calendar_birthdays():
    born = pd.Series(pd.to_datetime(["2000-03-05", "2000-03-05", "2000-03-05"]))
    at = pd.Series(pd.to_datetime(["2070-03-04", "2070-03-05", "2070-10-23"]))
    assert derive_age(born, at, None).tolist() == [69.0, 70.0, 70.0]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"entity_key": "pidd"}, "entity_key: no column 'pidd'"),
        ({"entity_key": "lab"}, None),  # repeating values: accepted (a poor key, but a key)
        ({"entity_key": "pid", "entity": {"static": ["sexx"]}}, r"entity.static.sexx: no such column"),
        ({"constraints": [{"type": "range", "column": "agee", "max": 3}]}, r"constraints.0 .*no column 'agee'"),
    ],
)
def test_entity_config_errors_name_the_column(config, message):
    table = _episodes()
    if message is None:
        infer_schema(table, parse_config(config))
        return
    with pytest.raises(ConfigError, match=message):
        infer_schema(table, parse_config(config))


def test_a_non_repeating_entity_key_is_refused():
    table = _episodes().append_column("row_no", pa.array(range(_episodes().num_rows)))
    with pytest.raises(ConfigError, match="'row_no' never repeats"):
        infer_schema(table, parse_config({"entity_key": "row_no"}))


def test_contradictory_orders_are_a_clear_error(layout):
    table, _, _, _, _ = layout
    config = parse_config(
        {
            "entity_key": "pid",
            "constraints": [
                {"type": "inequality", "low": "admit", "high": "discharge"},
                {"type": "inequality", "low": "discharge", "high": "admit"},
            ],
        }
    )
    schema = infer_schema(table, config)
    frame = to_model_frame(table, schema)
    with pytest.raises(ConfigError, match="form a cycle"):
        plan_entities(frame, table["pid"].to_numpy(zero_copy_only=False), schema, config)
