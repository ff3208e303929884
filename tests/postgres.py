"""A PostgreSQL schema for a test module, from ``SYNTH_TEST_POSTGRES_URL`` (``.ci/run`` starts the server).

Use as ``from tests.postgres import postgres  # noqa: F401`` (a module-scoped fixture yielding
``(engine, schema, url)``). Without the variable the tests are skipped, except in CI where
they fail, as in ``tests/test_sql.py``.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

POSTGRES_ENV = "SYNTH_TEST_POSTGRES_URL"


@pytest.fixture(scope="module")
def postgres():
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: .ci/run starts PostgreSQL and exports it")
        pytest.skip(f"no PostgreSQL: set {POSTGRES_ENV} (e.g. postgresql+psycopg://synth:synth@127.0.0.1/synth_test)")
    engine = sa.create_engine(url)
    schema = f"synth_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield engine, schema, url
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
