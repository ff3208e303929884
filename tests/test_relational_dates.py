"""Dates across tables: links to the parent's dates, floors and ceilings, known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from synth.relational.dates import PARENT, TableDates, decode_dates, encode_dates, plan_dates



def _stays():
    """Three ICU stays of two admissions; the second stay's patient died (a rare death time)."""
    admit = pd.Series(pd.to_datetime(["2100-01-01 08:00", "2100-01-01 08:00", "2100-03-01 12:00"]))
    discharge = admit + pd.to_timedelta([100, 100, 50], "h")
    parent = pd.DataFrame({"admittime": admit, "dischtime": discharge})
    intime = admit + pd.to_timedelta([1, 30, 2], "h")
    stays = pd.DataFrame({
        "intime": intime,
        "outtime": intime + pd.to_timedelta([20, 40, 10], "h"),
        "deathtime": [pd.NaT, intime[1] + pd.Timedelta(hours=45), pd.NaT],
    })
    return stays, parent


def test_dates_link_to_the_closest_parent_or_own_date_and_are_bounded_by_the_others():
    stays, parent = _stays()
    plan = plan_dates(stays, parent, threshold=0.99)
    assert plan.order == ("intime", "outtime", "deathtime")  # pairwise, not by median (the death is rare)
    assert {(link.column, link.parent) for link in plan.links} == {
        ("intime", PARENT + "admittime"),
        ("outtime", "intime"),
        ("deathtime", "outtime"),
    }
    assert ("deathtime", "intime") in plan.floors and ("outtime", PARENT + "admittime") in plan.floors
    assert ("outtime", PARENT + "dischtime") in plan.ceilings and ("intime", PARENT + "dischtime") in plan.ceilings
    assert TableDates.from_dict(plan.to_dict()) == plan


def test_encoded_steps_decode_to_the_same_dates():
    stays, parent = _stays()
    plan = plan_dates(stays, parent, threshold=0.99)
    encoded = encode_dates(stays, parent, plan)
    assert encoded["intime"].tolist() == [1, 30, 2]  # hours (the dates' resolution) after the admission
    pd.testing.assert_frame_equal(decode_dates(encoded, parent, plan), stays, check_dtype=False)


def test_generated_steps_stay_inside_the_parent():
    stays, parent = _stays()
    plan = plan_dates(stays, parent, threshold=0.99)
    steps = {"intime": [-50.0, 500.0, 0.0], "outtime": [10.0, 10.0, 1e9], "deathtime": [np.nan] * 3}  # hours
    drawn = pd.DataFrame(steps)
    out = decode_dates(drawn, parent, plan)
    assert (out["intime"] >= parent["admittime"]).all()  # a negative step is no step
    assert (out["intime"] <= parent["dischtime"]).all()  # 500 hours after admission is capped at discharge
    assert (out["outtime"] >= out["intime"]).all() and (out["outtime"] <= parent["dischtime"]).all()
    assert out.loc[1, "intime"] == parent.loc[1, "dischtime"]
