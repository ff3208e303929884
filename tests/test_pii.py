"""Direct identifiers (synth.pii): detection, the config's say, each handling, and the gate's check."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from faker import Faker

from synth.config import ColumnKind, load_config, parse_config
from synth.errors import ConfigError
from synth.evaluation.gate import gate_verdict
from synth.evaluation.identifiers import direct_identifier_scores
from synth.io.sources import parse_datetimes, read_table
from synth.models import synthesizer_for
from synth.pii.categories import PiiCategory
from synth.pii.detect import detect, is_nhs_number, is_phone_number, name_category
from synth.pii.fake import nhs_test_numbers
from synth.pii.rules import values_to_avoid
from synth.pii.values import GB_DRAMA_LANDLINE, GB_DRAMA_MOBILE, generalise, normalised, not_generalised
from synth.schema import infer_schema
from tests.conftest import HEART_CSV, PIMA_CSV
from tests.tables import appointments, identified_patients

FAKER = Faker("en_GB")
FAKER.seed_instance(11)
RNG = np.random.default_rng(11)


def found(table: pa.Table, config=None) -> dict[str, tuple[str, str, str]]:
    schema = infer_schema(table, config or parse_config({}))
    return {d.column: (d.category, d.handling, d.found_by) for d in schema.direct_identifiers}


# -- detection ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("first_name", "name"), ("PatientFirstName", "name"), ("surname", "name"), ("pt_last_name", "name"),
        ("forename", "name"), ("full_name", "name"), ("NHSNumber", "nhs_number"), ("nhs_no", "nhs_number"),
        ("mrn", "id"), ("hospital_number", "id"), ("DOB", "date_of_birth"), ("date_of_birth", "date_of_birth"),
        ("BirthDate", "date_of_birth"), ("email_address", "email"), ("home_phone", "phone"), ("mobile", "phone"),
        ("telephone_number", "phone"), ("postcode", "postcode"), ("zip_code", "postcode"),
        ("clinical_notes", "free_text"),
        # not direct identifiers, whatever words they share with one
        ("time_in_hospital", None), ("admission_type_id", None), ("drug_name", None), ("surname_known", None),
        ("label", None), ("dod", None), ("phone_calls_made", None), ("patient_nbr", None),
    ],
)
def test_detection_by_column_name(name, category):
    assert name_category(name) == (PiiCategory(category) if category else None)


def faker_column(make, n: int = 300) -> pa.Array:
    return pa.array([make() for _ in range(n)])


@pytest.mark.parametrize(
    ("values", "category"),
    [
        (lambda: faker_column(FAKER.first_name), "name"),
        (lambda: faker_column(FAKER.last_name), "name"),
        (lambda: faker_column(FAKER.name), "name"),
        (lambda: faker_column(FAKER.phone_number), "phone"),
        (lambda: faker_column(FAKER.free_email), "email"),
        (lambda: faker_column(FAKER.postcode), "postcode"),
        (lambda: faker_column(lambda: FAKER.paragraph(nb_sentences=3)), "free_text"),
        (lambda: faker_column(lambda: f"RX{FAKER.random_int(1_000_000, 9_999_999)}"), "id"),
        (lambda: pa.array(identified_patients(100, seed=1)["nhs_number"].to_list()), "nhs_number"),
        (lambda: pc.cast(pc.replace_substring_regex(pa.array(identified_patients(100, seed=1)["nhs_number"].to_list()),
                                                    " ", ""), pa.int64()), "nhs_number"),
    ],
)
def test_detection_by_content_under_a_neutral_name(values, category):
    detection = detect("column_7", values(), np.random.default_rng(0))
    assert detection is not None and detection.category is PiiCategory(category)
    assert detection.found_by == "content"


def test_content_checks_know_their_formats():
    assert is_nhs_number("943 476 5919") and is_nhs_number("943-476-5919") and is_nhs_number("9434765919")
    assert not is_nhs_number("943 476 5918") and not is_nhs_number("94347659190")
    assert is_phone_number("07911 123456") and is_phone_number("+44 20 7946 0123") and is_phone_number("07700 900461")
    assert not is_phone_number("12345") and not is_phone_number("250.83")
    # too few distinct values for names, however name-like (heart's sites, sex)
    assert detect("site", pa.array(["cleveland", "hungary", "switzerland", "va long beach"] * 50), RNG) is None
    assert detect("x", pa.array(["Grace", "Hope"] * 100), RNG) is None


def test_a_date_of_birth_is_found_by_name_at_full_precision_only():
    days = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in RNG.integers(0, 20_000, 200)]
    assert detect("dob", pa.array(days), RNG).category is PiiCategory.DATE_OF_BIRTH
    assert detect("dob", pa.array([d.replace(day=1) for d in days]), RNG) is None  # already generalised
    assert detect("dob", pa.array([str(d) for d in days]), RNG) is None  # text: read as a date first
    assert detect("admission_date", pa.array(days), RNG) is None


def test_no_false_positives_on_the_repository_tables(diabetes_sample, mimic_table):
    """What is found on the test tables: their patient and row ids (category id: regenerated as
    before) and MIMIC's date of birth, nothing else."""
    assert found(diabetes_sample, parse_config({"source": {"na_values": ["?"]}})) == {
        "encounter_id": ("id", "fake", "identifier kind"), "patient_nbr": ("id", "fake", "identifier kind"),
    }
    assert found(read_table(HEART_CSV, parse_config({}))) == {}
    assert found(read_table(PIMA_CSV, parse_config({}))) == {}
    from synth.demo.mimic import DEMO_CONFIG

    assert found(mimic_table, load_config(DEMO_CONFIG)) == {
        "subject_id": ("id", "fake", "identifier kind"), "hadm_id": ("id", "fake", "identifier kind"),
        "icustay_id": ("id", "fake", "identifier kind"), "dob": ("date_of_birth", "generalise", "column name"),
    }
    table = parse_datetimes(appointments(patients=2_000, seed=0), parse_config({})).to_arrow()
    assert found(table) == {
        "PatientId": ("id", "fake", "identifier kind"), "AppointmentID": ("id", "fake", "identifier kind"),
    }


# -- the schema and the config --------------------------------------------------------------------
def clinic(patients: int = 200) -> pa.Table:
    return identified_patients(patients, seed=5).to_arrow()


def test_the_schema_takes_each_identifier_out_of_the_model():
    schema = infer_schema(clinic())
    kinds = {c.name: c.kind for c in schema.columns}
    assert schema.entity_key == "nhs_number"
    for name in ("nhs_number", "first_name", "last_name", "phone", "email"):
        assert kinds[name] is ColumnKind.IDENTIFIER  # never modelled: fresh values at sampling
    assert kinds["date_of_birth"] is ColumnKind.DATETIME and kinds["postcode"] is ColumnKind.CATEGORICAL
    assert {c.name for c in schema.modelled} == {"date_of_birth", "postcode", "sex", "visit_date", "hba1c",
                                                 "systolic_bp"}
    again = type(schema).from_json(schema.to_json())
    assert again == schema and "Emma" not in schema.to_json()


def test_the_config_declares_overrides_and_drops():
    config = parse_config({"columns": {
        "first_name": {"pii": "none"},  # modelled as an ordinary category
        "sex": {"pii": "name"},  # declared: faked, however it looks
        "email": {"pii": {"handling": "drop"}},
        "date_of_birth": {"pii": {"level": "year"}},
        "postcode": {"pii": {"category": "postcode", "handling": "generalise", "level": "area"}},
    }})
    schema = infer_schema(clinic(), config)
    rules = {d.column: d for d in schema.direct_identifiers}
    assert "first_name" not in rules and schema["first_name"].kind is ColumnKind.CATEGORICAL
    assert (rules["sex"].category, rules["sex"].found_by, rules["sex"].default) == ("name", "config", True)
    assert schema["sex"].kind is ColumnKind.IDENTIFIER
    assert "email" in schema.dropped and "email" not in schema.names and rules["email"].default is False
    assert (rules["date_of_birth"].level, rules["postcode"].level) == ("year", "area")
    assert rules["postcode"].describe() == ("direct identifier 'postcode': postcode (found by config) -> generalise "
                                            "to its postcode area (set in the config)")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"columns": {"first_name": {"pii": {"handling": "generalise"}}}},
         "handling 'generalise' does not apply to name"),
        ({"entity_key": "nhs_number", "columns": {"nhs_number": {"pii": {"handling": "drop"}}}},
         "the entity key 'nhs_number' cannot be dropped"),
        ({"columns": {"sex": {"pii": {"category": "date_of_birth"}}}}, "a date of birth is generalised as a date"),
        ({"columns": {"first_name": {"kind": "categorical", "pii": "name"}}}, "kind categorical contradicts pii name"),
    ],
)
def test_config_that_cannot_hold_is_a_clear_error(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        infer_schema(clinic(), parse_config(settings))


def test_the_config_rejects_unknown_categories_and_mismatched_levels():
    with pytest.raises(ConfigError, match="columns.x.pii"):
        parse_config({"columns": {"x": {"pii": "nme"}}})
    with pytest.raises(ConfigError, match="level 'area' needs handling 'generalise'"):
        parse_config({"columns": {"x": {"pii": {"category": "postcode", "handling": "fake", "level": "area"}}}})
    with pytest.raises(ConfigError, match="pii.locale"):
        parse_config({"pii": {"locale": "xx_YY"}})


# -- each handling, through a fitted model ---------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A 1-epoch patient model of the clinic table (default handling), saved, and its real table."""
    table = clinic(300)
    config = parse_config({"model": {"epochs": 1}})
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema).fit(table, schema)
    folder = tmp_path_factory.mktemp("pii-model") / "model"
    model.save(folder)
    return table, schema, model, folder


def test_fake_values_keep_the_format_and_come_from_reserved_namespaces(fitted):
    table, schema, model, _ = fitted
    out = model.sample(400, seed=3, avoid=values_to_avoid([table], schema.direct_identifiers))
    assert all(is_nhs_number(v) and v.startswith("999 ") for v in out["nhs_number"].to_pylist())
    drama = tuple(prefix[1:] for prefix in GB_DRAMA_LANDLINE + GB_DRAMA_MOBILE)  # Ofcom's, without the trunk 0
    assert all(is_phone_number(v) and re.sub(r"\D", "", v)[-10:].startswith(drama) for v in out["phone"].to_pylist())
    assert all(v.endswith(("@example.com", "@example.org", "@example.net")) for v in out["email"].to_pylist())
    assert all(v.istitle() and v.isalpha() for v in out["first_name"].to_pylist())
    for column, category in (("nhs_number", "nhs_number"), ("first_name", "name"), ("last_name", "name"),
                             ("phone", "phone"), ("email", "email")):
        assert not set(normalised(table[column], category).to_pylist()) & set(
            normalised(out[column], category).to_pylist()), column
    # static identifiers: one value per synthetic patient
    for column in ("first_name", "phone"):
        counts = out.group_by("nhs_number").aggregate([(column, "count_distinct")])
        assert set(counts[f"{column}_count_distinct"].to_pylist()) == {1}


def test_without_the_real_values_fakes_are_drawn_blind_and_common_names_collide(fitted):
    """Why the pipeline hands the real values to sampling: en_GB has 364 first names."""
    table, schema, model, _ = fitted
    out = model.sample(400, seed=3)
    shared = set(normalised(table["first_name"], "name").to_pylist()) & set(
        normalised(out["first_name"], "name").to_pylist())
    assert len(shared) > 20
    assert all(v.startswith("999 ") for v in out["nhs_number"].to_pylist())  # counters: no set needed


def test_generalised_columns_are_generalised_in_the_model_and_the_output(fitted):
    table, schema, model, folder = fitted
    out = model.sample(400, seed=4)
    assert {d.day for d in out["date_of_birth"].to_pylist()} == {1}
    assert not_generalised(out["date_of_birth"], "date_of_birth", "month") == 0
    assert not_generalised(out["postcode"], "postcode", "outward") == 0
    assert set(out["postcode"].to_pylist()) <= set(generalise(table["postcode"], "postcode", "outward").to_pylist())
    assert out.schema == infer_schema(table).arrow_schema()  # same columns, same types


def test_the_model_folder_holds_no_real_value_of_an_identifier(fitted, tmp_path):
    table, schema, _, folder = fitted
    real = _identifier_strings(table)
    assert not _found_in(folder, real)
    # The search would see them: with names modelled as categories (pii: none), they are there.
    config = parse_config({"model": {"epochs": 1}, "columns": {"first_name": {"pii": "none"}}})
    modelled = infer_schema(table, config)
    leaky = tmp_path / "leaky"
    synthesizer_for(config, modelled).fit(table, modelled).save(leaky)
    assert set(_found_in(leaky, real)) & set(table["first_name"].to_pylist())


def _identifier_strings(table: pa.Table) -> set[str]:
    values = set()
    for column in ("nhs_number", "first_name", "last_name", "postcode", "phone", "email"):
        values.update(table[column].to_pylist())
    values.update(str(d) for d in table["date_of_birth"].to_pylist() if d.day != 1)
    return values


def _found_in(folder, values: set[str]) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
            found += [v for v in values if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text)]
        except UnicodeDecodeError:
            found += [v for v in values if len(v) >= 6 and v.encode() in data]
    return found


def test_a_dropped_identifier_is_not_in_the_output(fitted):
    table = fitted[0]
    config = parse_config({"model": {"epochs": 1}, "columns": {"email": {"pii": {"handling": "drop"}},
                                                              "phone": {"pii": {"handling": "drop"}}}})
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema).fit(table, schema)
    out = model.sample(50, seed=0, avoid=values_to_avoid([table], schema.direct_identifiers))
    assert "email" not in out.column_names and "phone" not in out.column_names
    assert direct_identifier_scores([table], out, schema)["direct_identifier_copies"] == 0


# -- the gate's check ------------------------------------------------------------------------------
def test_one_real_name_in_the_synthetic_data_fails_the_gate(fitted):
    table, schema, model, _ = fitted
    out = model.sample(200, seed=5, avoid=values_to_avoid([table], schema.direct_identifiers))
    clean = direct_identifier_scores([table], out, schema)
    assert clean["direct_identifier_copies"] == 0
    assert gate_verdict(_passing() | clean)["verdict"] == "pass"

    names = out["first_name"].to_pylist()
    names[17] = table["first_name"][0].as_py().upper()  # one real name, in capitals
    leaked = direct_identifier_scores([table], out.set_column(out.column_names.index("first_name"), "first_name",
                                                              pa.array(names)), schema)
    entry = next(c for c in leaked["direct_identifiers"] if c["column"] == "first_name")
    assert entry["real_values_in_synthetic"] == 1 and leaked["direct_identifier_copies"] == 1
    verdict = gate_verdict(_passing() | leaked)
    assert verdict["verdict"] == "fail"
    assert verdict["reasons"] == ["real values of direct identifier columns appear in the synthetic data "
                                  "(first_name: 1 real value); fake, generalise or drop those columns "
                                  "(columns.<name>.pii)"]
    assert table["first_name"][0].as_py() not in str(verdict)


def test_ungeneralised_values_and_unknown_real_values_fail_the_check(fitted):
    table, schema, model, _ = fitted
    out = model.sample(100, seed=6)
    days = out["date_of_birth"].to_pylist()
    days[0] = table["date_of_birth"].to_pylist()[0]  # a real date of birth at full precision
    exact = out.set_column(out.column_names.index("date_of_birth"), "date_of_birth",
                           pa.array(days, out.schema.field("date_of_birth").type))
    scores = direct_identifier_scores([table], exact, schema)
    entry = next(c for c in scores["direct_identifiers"] if c["column"] == "date_of_birth")
    expected = int(days[0].day != 1)
    assert (entry["not_generalised"], entry["real_values_in_synthetic"]) == (expected, expected)
    # without the real values, nothing can be shown: the check fails closed
    unknown = direct_identifier_scores([table.drop_columns(["first_name"])], out, schema)
    assert unknown["direct_identifier_copies"] is None
    assert gate_verdict(_passing() | unknown)["verdict"] == "fail"


def _passing() -> dict:
    """Metrics every other gate check passes (tests/test_gate.py's)."""
    from tests.test_gate import SAFE

    return dict(SAFE)


# -- values ----------------------------------------------------------------------------------------
def test_normalised_values_and_generalisation():
    assert normalised(pa.array([" SMITH  Jones", None]), "name").to_pylist() == ["smith jones", None]
    assert normalised(pa.array(["+44 7700 900123", "07700900123"]), "phone").to_pylist() == ["700900123"] * 2
    assert normalised(pa.array([9434765919]), "nhs_number").to_pylist() == ["9434765919"]
    postcodes = pa.array(["SW1A 1AA", "m1 1ae", "EC1A1BB", "SW1A", "90210", None])
    assert generalise(postcodes, "postcode", "outward").to_pylist() == ["SW1A", "M1", "EC1A", "SW1A", "902", None]
    assert generalise(postcodes, "postcode", "area").to_pylist() == ["SW", "M", "EC", "SW", "90", None]
    births = pa.array([dt.date(1980, 3, 17), dt.date(1980, 3, 1)])
    assert generalise(births, "date_of_birth", "month").to_pylist() == [dt.date(1980, 3, 1)] * 2
    assert generalise(births, "date_of_birth", "year").to_pylist() == [dt.date(1980, 1, 1)] * 2
    assert not_generalised(births, "date_of_birth", "month") == 1
    for level in ("outward", "area"):  # generalising twice changes nothing
        once = generalise(postcodes, "postcode", level)
        assert not_generalised(once, "postcode", level) == 0


def test_nhs_test_numbers_are_valid_distinct_and_bounded():
    numbers = nhs_test_numbers(0, 20_000, pa.string()).to_pylist()
    assert len(set(numbers)) == 20_000 and all(is_nhs_number(n) and n.startswith("999 ") for n in numbers)
    assert nhs_test_numbers(1, 1, pa.int64()).to_pylist() == [9990000026]
    with pytest.raises(Exception, match="than NHS test numbers \\(909,091\\)"):
        nhs_test_numbers(909_000, 100, pa.string())


def test_under_dp_fakes_never_look_at_real_values_and_styles_are_public_defaults():
    """DP: the output may depend on the real data only through the model, so no fake avoids
    (or is drawn in the style of) the real values: names are invented, the rest reserved."""
    from synth.pii.fake import _known_names

    table = clinic(300)
    upper = pc.utf8_upper(table["first_name"])  # a style a non-DP run would learn
    table = table.set_column(table.column_names.index("first_name"), "first_name", upper)
    # Faker writes en_GB phone numbers in Ofcom's drama ranges, where the fakes come from too;
    # real numbers never are, so give these patients numbers outside them.
    rng = np.random.default_rng(4)
    exchanges, lines = rng.integers(200, 496, table.num_rows), rng.integers(1000, 9999, table.num_rows)
    phones = [f"0161 {a} {b}" for a, b in zip(exchanges, lines)]
    table = table.set_column(table.column_names.index("phone"), "phone", pa.array(phones))
    config = parse_config({"model": {"epochs": 1}, "privacy": {"epsilon": 5.0}})
    schema = infer_schema(table, config)
    model = synthesizer_for(config, schema).fit(table, schema)
    assert model.identifiers_["first_name"]["style"]["case"] == "title"  # the default, not the extract's upper case
    out = model.sample(300, seed=1, avoid={"first_name": {"never", "used"}})
    names = out["first_name"].to_pylist()
    assert all(n.casefold() not in _known_names() for n in names)  # invented, so no real name by chance
    assert direct_identifier_scores([table], out, schema)["direct_identifier_copies"] == 0
    assert all(v.startswith("999 ") for v in out["nhs_number"].to_pylist())
