"""A full `synth run` on an extract that names its patients: no real identifier reaches any output.

The extract (tests/tables.py ``identified_patients``) holds realistic fake NHS numbers,
first and last names, dates of birth, UK postcodes, phone numbers and e-mails from a seeded
Faker: those are the "real" values. Searched for: the synthetic data (values compared
normalised, as the gate compares them), report.html, metrics.json, manifest.json, every
file of the model folder, and the run's whole console output at INFO level.

How each output is searched:
* text files and the console: each real value as a whole word, case-sensitive, in every
  way it is written (``943 476 5919`` and ``9434765919``; ``1983-06-20``). The report's
  embedded plotly.js bundle is left out: it is a fixed library file, and its minified
  code holds words such as surnames by chance.
* binary model files (``model.pt``, ``transformer.npz``): every real value of at least 6
  characters, as UTF-8 bytes (a shorter one would match random weight bytes by chance).
* dates of birth: generalised to their month, so a real date on the 1st of a month is its
  own generalisation; the real dates *not* on the 1st are searched for.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from synth.config import GateOptions
from synth.pii.values import normalised
from tests.conftest import SMALL_EVALUATION
from tests.tables import identified_patients
from tests.test_cli import synth

FAKED = {"nhs_number": "nhs_number", "first_name": "name", "last_name": "name", "phone": "phone", "email": "email"}


@pytest.mark.e2e
@pytest.mark.slow
def test_no_real_identifier_reaches_any_output_of_a_run(tmp_path):
    extract = identified_patients(patients=300, seed=3)
    source = tmp_path / "clinic.csv"
    extract.write_csv(source)
    config = tmp_path / "clinic.yaml"
    # The gate is not enforced so that synthetic/ is written whatever a 1-epoch model scores;
    # its direct_identifiers check is asserted below. (A gate that asks a reason for it gets one.)
    reason = ", reason: 'test data: fake identifiers'" if "reason" in GateOptions.model_fields else ""
    config.write_text(f"model: {{epochs: 1}}\nsampling: {{rows: 600}}\ngate: {{enforce: false{reason}}}\n"
                      + SMALL_EVALUATION)
    out = tmp_path / "out"
    done = synth("run", "--source", str(source), "--output", str(out), "--config", str(config),
                 tmp_path=tmp_path, level="INFO")
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]

    # The log states each column's decision and default.
    assert "direct identifier 'first_name': name (found by column name and content) -> fake (the default for name)" \
        in console
    assert "'date_of_birth': date_of_birth (found by column name) -> generalise to its month" in console
    assert "'postcode': postcode (found by column name and content) -> generalise to its outward code" in console

    metrics = json.loads((out / "metrics.json").read_text())
    check = next(c for c in metrics["gate"]["checks"] if c["name"] == "direct_identifiers")
    assert check["passed"] and check["value"] == 0
    assert {c["column"]: c["handling"] for c in metrics["direct_identifiers"]} == {
        "nhs_number": "fake", "first_name": "fake", "last_name": "fake", "date_of_birth": "generalise",
        "postcode": "generalise", "phone": "fake", "email": "fake",
    }

    synthetic = ds.dataset(out / "synthetic").to_table()
    assert synthetic.num_rows == 600
    real = extract.to_arrow()
    for column, category in FAKED.items():
        real_keys = set(normalised(real[column], category).to_pylist())
        assert not real_keys & set(normalised(synthetic[column], category).to_pylist()), column
    assert {d.day for d in synthetic["date_of_birth"].to_pylist()} == {1}
    assert not set(synthetic["postcode"].to_pylist()) & set(real["postcode"].to_pylist())
    # A synthetic patient keeps one name across their visits.
    per_patient = synthetic.group_by("nhs_number").aggregate([("first_name", "count_distinct")])
    assert max(per_patient["first_name_count_distinct"].to_pylist()) == 1

    searched = _real_strings(real)
    texts = {"console": console, "metrics.json": (out / "metrics.json").read_text(),
             "manifest.json": (out / "manifest.json").read_text(), "report.html": _without_plotly(out / "report.html")}
    binaries = {}
    for path in sorted((out / "model").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            try:
                texts[str(path.relative_to(out))] = data.decode("utf-8")
            except UnicodeDecodeError:
                binaries[str(path.relative_to(out))] = data
    assert len(binaries) >= 2  # the weights and the transformer arrays of each network
    for where, text in texts.items():
        found = [v for v in searched if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text)]
        assert not found, f"{where} holds real values {found[:5]}"
    for where, data in binaries.items():
        found = [v for v in searched if len(v) >= 6 and v.encode() in data]
        assert not found, f"{where} holds real values {found[:5]}"


def _real_strings(real: pa.Table) -> list[str]:
    """Every real identifier as it could be written."""
    values: set[str] = set()
    for column in ("nhs_number", "first_name", "last_name", "postcode", "phone", "email"):
        values.update(real[column].to_pylist())
    values.update(v.replace(" ", "") for v in real["nhs_number"].to_pylist())
    values.update(str(d) for d in real["date_of_birth"].to_pylist() if d.day != 1)
    return sorted(values)


def _without_plotly(report: Path) -> str:
    from plotly.offline import get_plotlyjs

    text = report.read_text()
    bundle = get_plotlyjs()
    assert bundle in text  # removed as a whole: the rest of the report is searched
    return text.replace(bundle, "")
