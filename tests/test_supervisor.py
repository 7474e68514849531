"""`activejob worker --processes N`: the supervisor keeps N worker processes alive,
replaces one that dies, and passes SIGTERM on so all stop gracefully."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cluster_jobs
import psutil
import pytest
from runner_support import ROOT, run_bounded, sql, wait_for

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


# -- children that cannot start ----------------------------------------------------------

# `activejob worker` run by a supervisor whose limits are cut down, so giving up takes seconds.
HARNESS = """
import sys
import activejob.supervisor as supervisor
for name, value in {limits!r}.items():
    setattr(supervisor, name, value)
sys.argv = ["activejob", *{argv!r}]
from activejob.cli import run
run()
"""


def finish(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a command that must end on its own within `timeout`; if it does not, it is killed
    with every process it started (a supervisor's children live in their own process group)."""
    return run_bounded(argv, timeout, merge_stderr=True)


def leftovers(marker: str) -> list[psutil.Process]:
    """Live processes whose command line holds `marker` (a test's own tmp_path): none may
    outlive the supervisor that started them."""
    left = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(process.info["cmdline"] or ()):
            left.append(process)
    return left


def test_supervisor_stops_at_once_when_a_child_reports_a_configuration_error(tmp_path: Path) -> None:
    done = finish([sys.executable, "-m", "activejob", "-v", "worker", "--database-url", f"sqlite:///{tmp_path}/j.db",
                   "--import", "nonexistent.module", "--processes", "2"], timeout=30)
    out = done.stdout
    assert done.returncode == 78, out
    assert "Error: cannot import 'nonexistent.module': No module named 'nonexistent'" in out
    assert out.rstrip().splitlines()[-1].startswith("Error: worker process ")
    assert "exited with 78 (EX_CONFIG: a configuration error" in out and "see the error it printed above" in out
    assert "starting another" not in out, "no child is restarted"
    assert "Traceback" not in out
    assert leftovers(str(tmp_path)) == []


def test_supervisor_gives_up_on_children_that_keep_failing_at_start_up(tmp_path: Path) -> None:
    # Children that die soon after starting, every time (a crash a restart may or may not mend,
    # so no configuration error): they are restarted until the limit, then it gives up.
    url = f"sqlite:///{tmp_path}/jobs.db"
    limits = {"RESTART_DELAY": 0.05, "MAX_FAST_FAILURES": 3}
    argv = ["-v", "worker", "--database-url", url, "--import", "tests.dies_at_start", "--processes", "2"]
    done = finish([sys.executable, "-c", HARNESS.format(limits=limits, argv=argv)], timeout=60)
    out = done.stdout
    assert done.returncode == 1, out
    restarts = re.findall(r"exited with 1 after [\d.]+s; starting another in ([\d.]+)s", out)
    assert len(restarts) >= 2, out
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("Error: worker processes keep failing at start-up: one died within 10s of starting "
                           "3 times in a row (last exit code 1); see the error it printed above"), out
    assert leftovers(str(tmp_path)) == []


def test_supervisor_restarts_children_that_crash_after_running_stably(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    migrated = JobQueue(url)
    migrated.store.upgrade()
    migrated.close()
    # A single death within STABLE_AFTER would make it give up: every crash here comes later.
    limits = {"RESTART_DELAY": 0.05, "STABLE_AFTER": 1.0, "MAX_FAST_FAILURES": 1}
    argv = ["-v", "worker", "--database-url", url, "--import", "tests.cluster_jobs", "--processes", "2",
            "--poll-interval", "0.2", "--lease", "3"]
    log_path = tmp_path / "supervisor.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    killed: set[int] = set()
    # When this test first saw each child: psutil's create_time comes from the boot time in
    # whole seconds, and on a VM it can be off from time.time() by more than STABLE_AFTER.
    first_seen: dict[int, float] = {}

    def two_stable_children(pid: int) -> list[psutil.Process] | None:
        kids = children(pid)
        now = time.monotonic()
        for k in kids:
            first_seen.setdefault(k.pid, now)
        if len(kids) != 2 or {k.pid for k in kids} & killed or not {k.pid for k in kids} <= registered(url):
            return None
        return kids if all(now - first_seen[k.pid] > 1.5 for k in kids) else None

    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", HARNESS.format(limits=limits, argv=argv)], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(3):
                victim = wait_for(lambda: two_stable_children(proc.pid), 30, what="two children at work")[0]
                killed.add(victim.pid)
                victim.kill()
            wait_for(lambda: two_stable_children(proc.pid), 30, what="the third replacement")
            assert proc.poll() is None, log_path.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log_path.read_text()
        finally:
            with contextlib.suppress(psutil.NoSuchProcess):
                for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        p.kill()
            proc.wait(10)
    assert log_path.read_text().count("exited with -9") == 3


# -- the give-up rule, on a clock the test moves -------------------------------------------

class FakeChild:
    """Stands in for a worker subprocess: it lives until the test says how it ended."""

    pids = iter(range(10_000, 20_000))

    def __init__(self, argv: list[str], **_options: object) -> None:
        self.argv = argv
        self.pid = next(self.pids)
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def exit(self, code: int) -> None:
        self.returncode = code


class Rig:
    """A Supervisor over FakeChild processes, reading its time from activejob.clock."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, processes: int = 1) -> None:
        from activejob import clock, supervisor

        self.now = 1000.0
        self.spawned: list[FakeChild] = []

        def popen(argv: list[str], **options: object) -> FakeChild:
            child = FakeChild(argv, **options)
            self.spawned.append(child)
            return child

        monkeypatch.setattr(clock, "monotonic", lambda: self.now)
        monkeypatch.setattr(supervisor.subprocess, "Popen", popen)
        self.module = supervisor
        self.sup = supervisor.Supervisor(["--import", "app.jobs"], processes)
        self.sup._setup()
        for i in range(processes):
            self.sup._spawn(i)

    def child(self, i: int = 0) -> FakeChild:
        child = self.sup.children[i]
        assert isinstance(child, FakeChild)
        return child

    def crash(self, after: float, code: int = 1, i: int = 0) -> float | None:
        """Let child `i` live `after` seconds and exit with `code`; return how long until it
        was replaced (None: it was not)."""
        victim = self.child(i)
        self.now += after
        victim.exit(code)
        self.sup._tend()
        if self.sup.stopping:
            return None
        waited = 0.0
        while self.sup.children[i] is None:
            self.now += 0.25
            waited += 0.25
            self.sup._tend()
        return waited


def test_a_child_dying_at_start_up_is_given_up_on_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)
    limit = rig.module.MAX_FAST_FAILURES
    waits = [rig.crash(after=0.5) for _ in range(limit - 1)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0][:limit - 1]
    assert rig.crash(after=0.5) is None
    assert rig.sup.stopping and rig.sup.exit_code == 1
    assert rig.sup.failure is not None and rig.sup.failure.startswith("worker processes keep failing at start-up")
    assert f"{limit} times in a row" in rig.sup.failure
    assert len(rig.spawned) == limit
    assert rig.sup._tend() == 0


def test_a_crash_after_running_stably_starts_the_count_over(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(monkeypatch)
    limit, stable = rig.module.MAX_FAST_FAILURES, rig.module.STABLE_AFTER
    for _ in range(limit - 1):
        rig.crash(after=stable - 0.5)
    assert rig.crash(after=stable) == 1.0, "restarted after the first delay again"
    for _ in range(limit - 1):
        assert rig.crash(after=0.5) is not None
    assert rig.crash(after=0.5) is None and rig.sup.exit_code == 1


@pytest.mark.parametrize("code", [78, 2])
def test_a_child_that_cannot_be_mended_by_a_restart_stops_the_others(
        monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    rig = Rig(monkeypatch, processes=3)
    healthy = [rig.child(1), rig.child(2)]
    rig.now += 60  # even after a stable run: the child said restarting would not help
    assert rig.crash(after=0.1, code=code) is None
    assert rig.sup.exit_code == code and rig.sup.failure is not None and f"exited with {code}" in rig.sup.failure
    assert [c.signals for c in healthy] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert rig.sup._tend() == 2, "the others get their graceful stop"
    for child in healthy:
        child.exit(0)
    assert rig.sup._tend() == 0 and len(rig.spawned) == 3
