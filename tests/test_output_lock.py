"""The output lock (synth.runs.OutputLock): a lease that a live run keeps and a dead one loses.

Each case is what a second run finds in the output folder: a live run in another process
(never taken over, however long it runs), a run killed on this machine (taken over at
once), a run on another machine (taken over only when its lease has expired), a pid
reused by a new process, newcomers racing for one stale lock (exactly one wins), and a
holder whose lock was taken over while it stalled (it fails instead of finishing).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from synth.runs import LOCK, OutputLock, RunConflictError

HOLD = textwrap.dedent(
    """
    import sys, time
    from synth.runs import OutputLock
    with OutputLock(sys.argv[1], owner="flow run holder", lease_seconds=float(sys.argv[2])):
        print("held", flush=True)
        time.sleep(600)
    """
)


def _holder_process(output, lease: float) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(output), str(lease)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def _write_lock(folder, age: float = 0.0, **record) -> None:
    path = folder / LOCK
    path.write_text(json.dumps({"owner": "crashed run", "token": "theirs", **record}))
    then = time.time() - age
    os.utime(path, (then, then))


def test_a_live_run_in_another_process_is_never_taken_over_and_a_killed_one_at_once(tmp_path):
    holder = _holder_process(tmp_path, lease=0.5)
    try:
        time.sleep(2.0)  # four leases: only its heartbeat keeps it valid
        with pytest.raises(RunConflictError, match=r"being written by another run \(flow run holder, process \d+"):
            with OutputLock(tmp_path, owner="second"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with OutputLock(tmp_path, owner="after the crash", lease_seconds=0.5):  # same machine: its pid is gone
        assert json.loads((tmp_path / LOCK).read_text())["owner"] == "after the crash"
    assert not (tmp_path / LOCK).exists()


def test_a_lock_from_another_machine_waits_for_its_lease(tmp_path):
    other = {"host": "worker-7", "machine": "another-kernel/pid:[1]", "pid": os.getpid(), "lease_seconds": 60}
    _write_lock(tmp_path, age=30, **other)  # renewed 30 s ago: alive as far as anyone can tell
    with pytest.raises(RunConflictError, match="on worker-7, since .*; its lease runs to"):
        with OutputLock(tmp_path):
            pass
    _write_lock(tmp_path, age=61, **other)  # not renewed for a whole lease: its container is gone
    with OutputLock(tmp_path, owner="next month"):
        assert json.loads((tmp_path / LOCK).read_text())["owner"] == "next month"


def test_a_pid_reused_by_a_new_process_does_not_keep_a_dead_runs_lock(tmp_path):
    me = psutil.Process()
    from synth.runs import _machine

    # A container restarted with the same host name: the old run's pid now belongs to someone else.
    _write_lock(tmp_path, machine=_machine(), pid=me.pid, started=me.create_time() - 3600)
    with OutputLock(tmp_path, owner="restarted"):
        pass
    _write_lock(tmp_path, machine=_machine(), pid=me.pid, started=me.create_time())  # really this process
    with pytest.raises(RunConflictError):
        with OutputLock(tmp_path):
            pass


def test_a_lock_written_before_leases_existed_follows_the_old_rules(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    _write_lock(tmp_path, age=3600, pid=int(dead.stdout), host=socket.gethostname())  # this host, process gone
    with OutputLock(tmp_path):
        pass
    _write_lock(tmp_path, age=3600, pid=1, host="worker-7")  # another host, an hour old: within a run's timeout
    with pytest.raises(RunConflictError):
        with OutputLock(tmp_path):
            pass


def _race(folder, barrier, results) -> None:
    barrier.wait()
    try:
        with OutputLock(folder, owner=f"racer {os.getpid()}", lease_seconds=60):
            results.put("won")
            time.sleep(1.0)
    except RunConflictError:
        results.put("refused")


def test_newcomers_racing_for_one_stale_lock_let_exactly_one_in(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(3):
        _write_lock(tmp_path, age=3600, host="gone", machine="gone/pid:[1]", pid=1, lease_seconds=60)
        barrier, results = context.Barrier(6), context.Queue()
        racers = [context.Process(target=_race, args=(tmp_path, barrier, results)) for _ in range(6)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        outcomes = sorted(results.get(timeout=5) for _ in racers)
        assert outcomes == ["refused"] * 5 + ["won"], f"round {round_}: {outcomes}"
        assert not (tmp_path / LOCK).exists()
        assert not list(tmp_path.glob(".tmp-*"))  # no lock file left aside


def test_a_holder_that_stalled_past_its_lease_and_was_taken_over_fails(tmp_path):
    lock = OutputLock(tmp_path, owner="stalled", lease_seconds=0.3)
    lock.__enter__()
    _write_lock(tmp_path, machine="elsewhere", token="the-new-holder")  # taken over while this one slept
    time.sleep(0.2)  # a heartbeat sees it and stops touching a lock that is not its own
    before = (tmp_path / LOCK).stat().st_mtime
    time.sleep(0.2)
    assert (tmp_path / LOCK).stat().st_mtime == before
    with pytest.raises(RunConflictError, match="lost its lock .* another run took the folder over"):
        lock.__exit__(None, None, None)
    assert json.loads((tmp_path / LOCK).read_text())["token"] == "the-new-holder"  # not removed


def test_taking_the_lock_clears_leftovers_of_interrupted_writes(tmp_path):
    (tmp_path / ".tmp-metrics.json.abc").write_text("{")
    (tmp_path / ".tmp-model.xyz").mkdir()
    (tmp_path / "report.html").write_text("kept")
    with OutputLock(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
