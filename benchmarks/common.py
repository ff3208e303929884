"""What every benchmark shares: the machine it ran on, isolated measurements, the table, the JSON.

Each measured case runs in a fresh Python process (``measure``), so one case's memory
never inflates the next one's peak and every case starts from the same state. Peak RSS
is the larger of the child's own high-water mark (``ru_maxrss``, exact) and a 50 ms
sampler over the child's whole process tree (which catches Dask workers and other
grandchildren). Every result carries the 1-minute load average seen just before it ran:
these machines are shared, and a ratio is only fair between cases of the same run.

A benchmark script calls ``measure(__file__, case)``; the child side is
``run_child(handlers)`` at the top of the script's ``main``, which dispatches the case to
the function registered under ``case["kind"]`` and prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = BENCH / "data"
RESULTS = BENCH / "results"
SHARED_DATA = REPO.parent / "shared" / "data"
DIABETES = SHARED_DATA / "diabetes_130" / "diabetic_data.csv"
DIABETES_SAMPLE = REPO / "tests" / "data" / "diabetes_130_10k.csv"  # its first 10,000 rows, in the repository
DIABETES_ORIGIN = "UCI ML Repository, dataset 296 (https://archive.ics.uci.edu/dataset/296), file diabetic_data.csv"
NOSHOW = SHARED_DATA / "noshow_appointments" / "KaggleV2-May-2016.csv"
NOSHOW_ORIGIN = "Kaggle, joniarroba/noshowappointments (CC BY-NC-SA 4.0: never copied into this repository)"
#: Above this 1-minute load average (on 2 cores) other jobs share the cores: timings are flagged.
BUSY_LOAD = 2.5
LIBRARIES = ("torch", "numpy", "pandas", "pyarrow", "polars", "rdt", "sdmetrics", "dask", "sdv", "ctgan", "gower")
CHILD_FLAG = "--child-case"


# -- the data -------------------------------------------------------------------------------
def dataset(path: Path, origin: str) -> Path:
    """``path`` if it is there; otherwise one line saying where to get it, and exit 0 (a skip, not a failure).

    The full public datasets live beside the repository (``../shared/data``), never in it.
    """
    if not path.is_file():
        print(f"skipped: {path} is absent; get it from {origin} and put it there")
        sys.exit(0)
    return path


def diabetes(smoke: bool = False) -> Path:
    """diabetes-130: the full file, or in smoke runs the repository's 10,000-row sample."""
    return DIABETES_SAMPLE if smoke else dataset(DIABETES, DIABETES_ORIGIN)


# -- the machine ----------------------------------------------------------------------------
def machine() -> dict:
    """Cores, memory, CPU and GPU model, library versions and the load right now."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "os": platform.platform(),
        "versions": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def print_machine(info: dict) -> None:
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    load = info["load_average"]
    print(
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"GPU: {info['gpu'] or 'none'}; torch threads {info['torch_threads']}\n"
        f"Versions: {versions}\n"
        f"Load average (1/5/15 min): {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
        + ("  ** busy: other jobs share the cores; compare ratios within this run only **" if load[0] > BUSY_LOAD else ""),
        flush=True,
    )


# -- one case in a fresh process ------------------------------------------------------------
class TreeSampler:
    """Peak RSS and CPU seconds of a process and all its children (Dask workers included).

    A background thread samples the tree every ``interval`` seconds while the ``with``
    block runs; CPU seconds are user + system at each process's last sample.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_bytes, self._cpu, self._stop = 0, {}, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        try:
            parent = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            try:
                tree = [parent, *parent.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for p in tree:
                try:
                    total += p.memory_info().rss
                    times = p.cpu_times()
                    self._cpu[p.pid] = times.user + times.system
                except psutil.Error:
                    pass
            self.peak_bytes = max(self.peak_bytes, total)
            time.sleep(self.interval)


def measure(script: str | Path, case: dict, timeout: float | None = None) -> dict:
    """Run ``case`` through ``script``'s child side; add peak RSS, CPU seconds and the load before it."""
    load_before = os.getloadavg()[0]
    command = [sys.executable, str(script), CHILD_FLAG, json.dumps(case)]
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    results = []
    try:
        with TreeSampler(process.pid) as tree:
            for line in process.stdout:
                if line.startswith("RESULT "):
                    results.append(line)
                else:
                    print("    " + line, end="", flush=True)
            process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    if process.returncode != 0 or not results:
        raise RuntimeError(f"benchmark case {case} failed (exit {process.returncode})")
    result = json.loads(results[-1][len("RESULT ") :])
    result["peak_rss_mb"] = max(tree.peak_bytes, result.pop("child_max_rss", 0)) / 2**20
    result["cpu_seconds"] = tree.cpu_seconds
    result["load_before"] = round(load_before, 2)
    if result.get("seconds") and result.get("rows"):
        result.setdefault("rows_per_second", result["rows"] / result["seconds"])
    return result


def run_child(handlers: dict[str, Callable[[dict], dict]]) -> bool:
    """On the child side (``CHILD_FLAG`` in argv): run the case and print its ``RESULT``; else False."""
    if CHILD_FLAG not in sys.argv:
        return False
    case = json.loads(sys.argv[sys.argv.index(CHILD_FLAG) + 1])
    threads = case.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    result = handlers[case["kind"]](case)
    result["child_max_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print("RESULT " + json.dumps(result), flush=True)
    return True


# -- reporting ------------------------------------------------------------------------------
@dataclass
class Target:
    """One of the issue's targets: what was asked, what was measured, met or not, and why."""

    name: str
    measured: str
    met: bool | None  # None: not measured in this run (e.g. SDV absent in smoke mode)
    bound: str = ""

    def line(self) -> str:
        status = {True: "MET   ", False: "MISSED", None: "n/a   "}[self.met]
        return f"  [{status}] {self.name}: {self.measured}" + (f"\n           bound: {self.bound}" if self.bound else "")


@dataclass
class Report:
    """The rows of one benchmark's table, its targets, and where they are written."""

    stage: str
    info: dict
    rows: list[dict] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, case: str, result: dict, baseline: dict | None = None, **extra) -> dict:
        """Record and print one row; ``ratio`` is rows/s relative to ``baseline``'s rows/s."""
        row = {"case": case, **result, **extra}
        if baseline is not None and baseline.get("rows_per_second") and row.get("rows_per_second"):
            row["ratio_to_baseline"] = row["rows_per_second"] / baseline["rows_per_second"]
        self.rows.append(row)
        print(format_row(row), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}", flush=True)

    def write(self, out: Path) -> Path:
        """Print the targets and write everything as JSON to ``out / <stage>.json``."""
        if self.targets:
            print("Targets:")
            for target in self.targets:
                print(target.line())
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{self.stage}.json"
        payload = {
            "stage": self.stage,
            "machine": self.info,
            "rows": self.rows,
            "targets": [vars(t) for t in self.targets],
            "notes": self.notes,
        }
        path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
        print(f"wrote {path}", flush=True)
        return path


HEADER = f"{'case':<44} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'peak RSS':>10} {'vs base':>8} {'load':>5}"


def format_row(row: dict) -> str:
    ratio = row.get("ratio_to_baseline")
    return (
        f"{row['case'][:44]:<44} {row.get('rows', 0):>12,} {row.get('seconds', 0):>9.1f} "
        f"{row.get('rows_per_second', 0):>12,.0f} {row.get('peak_rss_mb', 0):>8,.0f}MB "
        f"{(f'{ratio:.3f}x' if ratio else '-'):>8} {row.get('load_before', 0):>5.1f}"
    )


def header(stage: str, info: dict, description: str, threads: int = 0) -> None:
    """Print the stage, the machine and the table header; ``threads`` is what every case sets (0: default)."""
    info["case_torch_threads"] = threads or info["torch_threads"]
    print(f"== {stage} ==  {description}; torch threads per case: {threads or 'default'}")
    print_machine(info)
    print(HEADER, flush=True)


def sdv_available() -> bool:
    try:
        metadata.version("sdv")
    except metadata.PackageNotFoundError:
        return False
    return True


def results_dir(args) -> Path:
    """``--out`` when given; smoke runs default to a folder of their own so they never overwrite full results."""
    if getattr(args, "out", None):
        return Path(args.out)
    return RESULTS / "smoke" if getattr(args, "smoke", False) else RESULTS
