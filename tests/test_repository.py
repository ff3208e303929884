"""The repository is self-contained: its tests and library read nothing from beside it."""

from __future__ import annotations

import re

from tests.conftest import REPO, TEST_DATA

#: A path into the team's data folder beside the repository, however it is spelt ("..", "/", its name).
_FOLDER = "shared"
_SHARED = re.compile(rf"""\.\.[/\\]{_FOLDER}|["']{_FOLDER}["']\s*\)?\s*/|parent\s*/\s*["']{_FOLDER}["']""")


def test_nothing_in_the_library_flows_tasks_or_tests_reads_the_shared_folder():
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("synth", "flows", "tasks", "tests", "deployments")
        for path in sorted((REPO / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _SHARED.search(line) and path.name != "test_repository.py"
    ]
    assert offenders == []


def test_every_test_data_file_is_described_with_its_licence():
    readme = (TEST_DATA / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in TEST_DATA.iterdir() if p.name != "README.md")
    assert files, "tests/data is empty"
    for name in files:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} is not in tests/data/README.md"
        assert re.search(r"CC BY 4\.0|CC0|ODbL|MIT", row), f"{name}: no licence in its README row"
    total = sum((TEST_DATA / name).stat().st_size for name in files)
    assert total < 5 * 2**20  # a few MB in all
