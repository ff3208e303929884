"""A whole run leaks nothing real and leaves nothing real behind but its private work folder.

One run of the generate flow on an extract that names its patients (tests/tables.py
``identified_patients``: seeded fake identifiers stand for the real ones), releasing to a
SQL table whose connection URL is a secret: a Prefect Secret block (a SQLite database,
always), or ``SYNTH_SQL_URL`` holding a PostgreSQL URL with its password
(``SYNTH_TEST_POSTGRES_URL``; skipped without it). The run's process has umask 0, so
every file a library creates is world-writable unless the pipeline makes it private, and
it keeps its work folder (``keep_work``) so that folder can be inspected.

Searched, for real identifiers, real records and the secret:
* the synthetic data (Parquet) and the SQL table: no real identifier value, no real row
  (all of a row's modelled values together, generalised as the model saw them);
* as text: the console at INFO, report.html (without its fixed plotly.js bundle),
  metrics.json, manifest.json, every text file of the model folder, and what Prefect's API
  holds: every log line, artifact, flow and task run's parameters and state message;
* as bytes: the model's binary files and Prefect's persisted task results.

A real identifier is any way one is written (tests/test_direct_identifiers_run.py). A real
record in a text is a row's visit date, HbA1c and blood pressure within 200 characters of
each other. The secret is the URL, and its ``user:password@`` part.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from synth.pii.rules import generalised_table
from synth.schema import Schema
from tests.conftest import SMALL_EVALUATION
from tests.tables import identified_patients
from tests.test_cli import SYNTH
from tests.test_direct_identifiers_run import _real_strings, _without_plotly

POSTGRES_ENV = "SYNTH_TEST_POSTGRES_URL"
WINDOW = 200


def _run(tmp_path: Path, url: str, via: str, table: str) -> tuple[str, Path, Path, Path]:
    """Run the generate flow in a fresh process with umask 0; (console, output, work root, Prefect home)."""
    extract = identified_patients(patients=300, seed=11)
    source = tmp_path / "clinic.csv"
    extract.write_csv(source)
    config = tmp_path / "clinic.yaml"
    config.write_text("model: {epochs: 1}\nsampling: {rows: 600}\n"
                      "gate: {enforce: false, reason: 'test data: fake identifiers'}\n" + SMALL_EVALUATION)
    out, work, home = tmp_path / "out", tmp_path / "work", tmp_path / "prefect-home"
    secret = "clinic-db-url" if via == "secret" else None
    script = textwrap.dedent(f"""
        import os
        os.umask(0)
        if {secret!r}:
            from prefect.blocks.system import Secret
            Secret(value={url!r}).save({secret!r}, overwrite=True)
        from flows.generate import generate
        from flows.parameters import GenerateParameters
        generate(GenerateParameters(source={str(source)!r}, output={str(out)!r}, config_path={str(config)!r},
                                    work_dir={str(work)!r}, sql_table={table!r}, sql_url_secret={secret!r},
                                    keep_work=True))
    """)
    env = {k: v for k, v in os.environ.items() if k != "SYNTH_SQL_URL"}
    env |= {"PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "INFO"}
    if via == "env":
        env["SYNTH_SQL_URL"] = url
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
    console = done.stdout + done.stderr
    assert done.returncode == 0, console[-3000:]
    return console, out, work, home


def _prefect_records(home: Path) -> str:
    """Everything Prefect's API holds about the runs, as JSON text: logs, artifacts, parameters, states."""
    script = textwrap.dedent("""
        import json
        from prefect.client.orchestration import get_client

        def every(read, **filters):  # the API returns at most 200 at a time
            found = []
            while batch := read(limit=200, offset=len(found), **filters):
                found += batch
            return found

        with get_client(sync_client=True) as client:
            held = {
                "logs": [log.message for log in every(client.read_logs)],
                "artifacts": [a.model_dump(mode="json") for a in every(client.read_artifacts)],
                "flow_runs": [[r.parameters, r.state.message if r.state else None] for r in every(client.read_flow_runs)],
                "task_runs": [[r.name, r.state.message if r.state else None] for r in every(client.read_task_runs)],
            }
        print(json.dumps(held, default=str))
    """)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    held = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(held["logs"]) > 20 and len(held["artifacts"]) >= 3  # there was something to search
    return json.dumps(held)


def _records(real: pl.DataFrame) -> list[tuple[str, ...]]:
    """Each real row's distinctive values as the outputs would write them."""
    return [(str(d), f"{h:g}", f"{b:g}") for d, h, b in real.select("visit_date", "hba1c", "systolic_bp").iter_rows()]


def _leaked_records(text: str, records: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    found = []
    for record in records:
        first, rest = record[0], record[1:]
        for match in re.finditer(re.escape(first), text):
            window = text[max(match.start() - WINDOW, 0): match.end() + WINDOW]
            if all(re.search(rf"(?<![\w.]){re.escape(v)}(?![\w]|\.\d)", window) for v in rest):
                found.append(record)
                break
    return found


def _secrets(url: str) -> list[str]:
    parsed = sa.make_url(url)
    found = [url]
    if parsed.password:
        found.append(f"{parsed.username}:{parsed.password}@")
        if len(parsed.password) >= 8:
            found.append(parsed.password)
    return found


@pytest.fixture(params=["secret-block-sqlite", "environment-postgres"])
def sql_sink(request, tmp_path):
    """(URL, how the run gets it, table name); the table is dropped afterwards."""
    if request.param == "secret-block-sqlite":
        # SQLite URLs hold no password: the canary in the file name stands for one.
        url = f"sqlite:///{tmp_path / f'canary-{uuid.uuid4().hex}.db'}"
        yield url, "secret", "synthetic_clinic"
        return
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL: set {POSTGRES_ENV}")
    table = f"synth_leak_{uuid.uuid4().hex[:8]}"
    yield url, "env", table
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


@pytest.mark.e2e
@pytest.mark.slow
def test_no_real_record_identifier_or_secret_reaches_any_output(tmp_path, sql_sink):
    url, via, table = sql_sink
    console, out, work, home = _run(tmp_path, url, via, table)
    real = identified_patients(patients=300, seed=11)
    schema = Schema.from_json((out / "model" / "schema.json").read_text())
    modelled = [c.name for c in schema.modelled]

    # The synthetic data, in the release folder and in the SQL table.
    synthetic = pl.from_arrow(ds.dataset(out / "synthetic").to_table())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        released = pl.read_database(f"SELECT * FROM {table}", conn)
    engine.dispose()
    assert released.height == synthetic.height == 600
    real_as_modelled = pl.from_arrow(generalised_table(real.to_arrow(), schema.direct_identifiers)).select(modelled)
    identifiers = _real_strings(real.to_arrow())
    for name, rows in {"synthetic/": synthetic, f"SQL table {table}": released}.items():
        # Compared as text: SQLite hands dates back as text.
        copies = rows.select(modelled).cast(pl.String).join(real_as_modelled.cast(pl.String), on=modelled, how="semi")
        assert copies.height == 0, f"{name} holds {copies.height} real rows"
        for column in ("nhs_number", "first_name", "last_name", "phone", "email", "postcode"):
            shared = set(rows[column].cast(pl.String).to_list()) & set(real[column].cast(pl.String).to_list())
            assert not shared, f"{name} holds real values of {column}: {sorted(shared)[:3]}"

    # Every text output, and what Prefect's API holds.
    texts = {"console": console, "report.html": _without_plotly(out / "report.html"),
             "metrics.json": (out / "metrics.json").read_text(), "manifest.json": (out / "manifest.json").read_text(),
             "Prefect API": _prefect_records(home)}
    binaries = {}
    for path in [*sorted((out / "model").rglob("*")), *sorted((home / "storage").rglob("*"))]:
        if path.is_file():
            data = path.read_bytes()
            try:
                texts[str(path)] = data.decode("utf-8")
            except UnicodeDecodeError:
                binaries[str(path)] = data
    assert any("storage" in name for name in [*texts, *binaries])  # Prefect persisted task results
    records, secrets = _records(real), _secrets(url)
    assert _leaked_records("x 2024-01-05 y 47.3 z 131 ", [("2024-01-05", "47.3", "131")])  # the search works
    for where, text in texts.items():
        found = [v for v in identifiers if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text)]
        assert not found, f"{where} holds real identifiers {found[:5]}"
        assert not _leaked_records(text, records), f"{where} holds real records {_leaked_records(text, records)[:3]}"
        assert not [s for s in secrets if s in text], f"{where} holds the SQL URL or its password"
    for where, data in binaries.items():
        found = [v for v in identifiers + secrets if len(v) >= 6 and v.encode() in data]
        assert not found, f"{where} holds real values or the secret {found[:5]}"

    # The work folder was kept (keep_work), private whatever the umask; synth clean lists, then removes it.
    folders = [p for p in work.iterdir() if p.is_dir()]
    assert len(folders) == 1 and list(folders[0].glob("clean/train/part-*.parquet"))
    for path in [work, *work.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
    wide = {**os.environ, "COLUMNS": "500"}
    listed = subprocess.run([*SYNTH, "clean", "--work-dir", str(work), "--output", str(out), "--dry-run"],
                            capture_output=True, text=True, env=wide)
    assert listed.returncode == 0 and "would remove 1" in listed.stderr and str(folders[0]) in listed.stderr
    assert folders[0].exists()
    removed = subprocess.run([*SYNTH, "clean", "--work-dir", str(work), "--output", str(out)],
                             capture_output=True, text=True, env=wide)
    assert removed.returncode == 0 and "removing 1" in removed.stderr
    assert not folders[0].exists()
