"""docker/: what can be checked without a Docker engine (none runs here).

The images' install commands must match pyproject.toml (torch pin, extras, Python), every
file they copy must exist, their worker pools must be the ones prefect.yaml deploys to,
and the compose file must be valid YAML whose images, builds and variables line up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
import yaml

from tests.prefect_server import REPO

DOCKER = REPO / "docker"
IMAGES = {"Dockerfile.cpu": "synth-cpu", "Dockerfile.cuda": "synth-gpu"}


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_image_installs_what_pyproject_pins(dockerfile, project):
    text = (DOCKER / dockerfile).read_text()
    python = re.search(r"^FROM python:(\d+\.\d+)", text, re.M).group(1)
    assert f">={python}" in project["requires-python"]
    torch_pin = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert f'pip install "{torch_pin}"' in text
    extras = re.search(r'pip install "\.\[([\w,-]+)\]"', text).group(1).split(",")
    assert set(extras) <= set(project["optional-dependencies"])
    for source in re.findall(r"^COPY (\S+) ", text, re.M):
        assert (REPO / source).exists(), source


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_image_worker_polls_a_pool_of_prefect_yaml(dockerfile):
    pools = {
        d["work_pool"]["name"]
        for d in yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())["deployments"]
    }
    cmd = re.search(r"^CMD (\[.*\])$", (DOCKER / dockerfile).read_text(), re.M).group(1)
    assert IMAGES[dockerfile] in cmd and IMAGES[dockerfile] in pools


def test_compose_file_lines_up():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "prefect-server", "deploy", "worker", "worker-gpu"} <= set(services)
    server_image = services["prefect-server"]["image"]
    assert server_image.split(":")[1].startswith(metadata.version("prefect"))
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    for name in ("deploy", "worker-gpu"):
        assert (REPO / services[name]["build"]["dockerfile"]).is_file()
    for name in ("worker", "worker-gpu"):
        assert services[name]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    text = (DOCKER / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    documented = set(re.findall(r"^(\w+)=", (DOCKER / "env.example").read_text(), re.M))
    assert used <= documented
    assert not re.search(r"PASSWORD:\s*['\"]?\w", text.replace("${POSTGRES_PASSWORD", ""))  # no literal passwords


def test_compose_config_validates(tmp_path):
    """``docker compose config`` (or docker-compose v1, which .ci/run installs) parses the file."""
    env = tmp_path / ".env"
    env.write_text(
        "POSTGRES_PASSWORD=x\nSYNTH_MONTHLY_SOURCE=/a\nSYNTH_MONTHLY_OUTPUT=/b/{month}\nSYNTH_MONTHLY_CONFIG=/c\n"
    )
    compose = DOCKER / "compose.yaml"
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        # v1 predates the top-level `name:`; check the rest of the file from a copy beside it.
        command = ["docker-compose"]
        copy = DOCKER / f".compose-check-{tmp_path.name}.yaml"
        copy.write_text("".join(line for line in compose.read_text().splitlines(True) if not line.startswith("name:")))
        compose = copy
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    try:
        result = subprocess.run(
            [*command, "--env-file", str(env), "-f", str(compose), "config"], capture_output=True, text=True
        )
    finally:
        if compose.name.startswith(".compose-check"):
            compose.unlink()
    assert result.returncode == 0, result.stderr
    assert "synth-worker:cuda" in result.stdout and "/b/{month}" in result.stdout


def _context(root, dockerfile: str = "docker/Dockerfile.cpu") -> set[str]:
    """The files ``docker build`` would send from ``root`` under the repository's .dockerignore
    (docker-py's implementation of Docker's matching rules)."""
    from docker.utils.build import exclude_paths

    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    return {p for p in exclude_paths(str(root), patterns, dockerfile=dockerfile) if (root / p).is_file()}


#: What a working copy accumulates that must never reach the Docker daemon.
LOCAL_ONLY = [".venv/lib/python3.11/site-packages/torch/__init__.py", "benchmarks/data/diabetic_data.csv",
              "benchmarks/results/sample.json", "out/demo/synthetic/part-00000.parquet", ".prefect/prefect.db",
              "tests/data/diabetes_130_10k.csv", "tests/__pycache__/conftest.cpython-311.pyc",
              "synth/__pycache__/config.cpython-311.pyc", "docker/.env", ".git/HEAD", "data/mimic3_demo/PATIENTS.csv",
              ".pytest_cache/v/cache/nodeids", "synth_pipeline.egg-info/PKG-INFO"]


def test_build_context_holds_only_what_the_images_copy(tmp_path):
    for name in [*LOCAL_ONLY, "pyproject.toml", "README.md", "synth/config.py", "tasks/io.py", "flows/cli.py",
                 "deployments/prefect.yaml", "docker/Dockerfile.cpu", ".dockerignore"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    sent = _context(tmp_path)
    assert sent == {"pyproject.toml", "README.md", "synth/config.py", "tasks/io.py", "flows/cli.py",
                    "deployments/prefect.yaml", "docker/Dockerfile.cpu", ".dockerignore"}


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_every_copied_file_is_in_the_build_context(dockerfile):
    sent = _context(REPO, f"docker/{dockerfile}")
    for source in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", (DOCKER / dockerfile).read_text(), re.M):
        for path in source.split():
            tracked = [p.relative_to(REPO).as_posix() for p in ([REPO / path] if (REPO / path).is_file()
                       else (REPO / path).rglob("*.py"))]
            assert tracked and set(tracked) <= sent, path
    assert not {p for p in sent if p.split("/")[0] in {".venv", "benchmarks", "out", ".prefect", "tests"}}


def test_workers_share_prefect_home_results_and_work_folders():
    """A run retried on the other worker finds the persisted task results and the work folder it resumes from."""
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    for dockerfile in IMAGES:
        text = (DOCKER / dockerfile).read_text()
        env = dict(re.findall(r"^\s+(PREFECT_HOME|PREFECT_RESULTS_LOCAL_STORAGE_PATH|XDG_CACHE_HOME)=(\S+)", text, re.M))
        assert env["PREFECT_RESULTS_LOCAL_STORAGE_PATH"].startswith(env["PREFECT_HOME"] + "/")
        assert f"chown synth {env['XDG_CACHE_HOME']} {env['PREFECT_HOME']}" in text  # the worker's user writes there
    mounts = [set(services[name]["volumes"]) for name in ("worker", "worker-gpu")]
    assert mounts[0] == mounts[1] >= {"work:/var/cache/synth", "prefect:/var/lib/prefect", "data:/data"}
