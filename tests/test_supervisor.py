"""`activejob worker --processes N`: the supervisor keeps N worker processes alive,
replaces one that dies, and passes SIGTERM on so all stop gracefully."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cluster_jobs
import psutil
import pytest
from runner_support import ROOT, sql, wait_for

from activejob import JobQueue

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    url = f"sqlite:///{tmp_path}/jobs.db"
    migrated = JobQueue(url)
    migrated.store.upgrade()  # before the children race to
    migrated.close()
    out = open(tmp_path / "supervisor.log", "wb")  # noqa: SIM115 - closed below
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "activejob", "-v", "worker", "--database-url", url, "--import", "tests.cluster_jobs",
         "--processes", "2", "--poll-interval", "0.2", "--lease", "3", "--concurrency", "2"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )
    try:
        yield proc, url, tmp_path / "supervisor.log"
    finally:
        family = []
        with contextlib.suppress(psutil.NoSuchProcess):
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        proc.wait(10)
        out.close()


def children(pid: int) -> list[psutil.Process]:
    try:
        return [c for c in psutil.Process(pid).children() if c.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


def registered(url: str) -> set[int]:
    return {row[0] for row in sql(url, "SELECT pid FROM activejob_workers")}


def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(
        supervisor: tuple[subprocess.Popen[bytes], str, Path], tmp_path: Path) -> None:
    proc, url, log_path = supervisor
    first = wait_for(lambda: (lambda kids: kids if len(kids) == 2 else None)(children(proc.pid)), 30,
                     what="two worker processes")
    first_pids = {c.pid for c in first}
    wait_for(lambda: registered(url) == first_pids, 30, what="both children in the worker registry")

    # Both children run jobs.
    runs = tmp_path / "runs.log"
    queue = JobQueue(url, auto_migrate=False)
    queue.enqueue([cluster_jobs.RecordRun.set().request({"n": n, "log": str(runs)}, max_args_bytes=10_000)
                   for n in range(40)])
    wait_for(lambda: len(cluster_jobs.executions(str(runs))) == 40, 30, what="40 jobs run")

    victim = first[0]
    victim.kill()
    replacement = wait_for(
        lambda: (lambda kids: kids if len(kids) == 2 and victim.pid not in {k.pid for k in kids} else None)(
            children(proc.pid)), 30, what="a replacement child")
    new_pid = ({c.pid for c in replacement} - first_pids).pop()
    wait_for(lambda: new_pid in registered(url), 30, what="the replacement in the worker registry")
    assert proc.poll() is None

    queue.enqueue([cluster_jobs.RecordRun.set().request({"n": n, "log": str(runs)}, max_args_bytes=10_000)
                   for n in range(40, 60)])
    wait_for(lambda: len(cluster_jobs.executions(str(runs))) == 60, 30, what="jobs run after the restart")
    queue.close()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log_path.read_text()
    for child in replacement:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert registered(url) == {victim.pid}, "children that stopped gracefully unregistered themselves"
    output = log_path.read_text()
    assert "exited with -9" in output and "received SIGTERM" in output
