"""Many worker processes on one database: PostgreSQL, as on many machines, and a SQLite
file, as on one machine (the first two tests run on both).

Real `activejob worker` subprocesses drain thousands of jobs; each job appends a line
to a file when it runs (tests/cluster_jobs.py), so executions are counted outside the
storage under test. Workers are killed, their connections terminated, and every job
must still complete; an enqueue in one process wakes an idle worker in another.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cluster_jobs
import pytest
from runner_support import Workers, sql, wait_for

from activejob import JobQueue
from activejob.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
postgres_only = pytest.mark.postgres

JOBS = "tests.cluster_jobs"



def enqueue(url: str, log: Path, count: int, *, seconds: float = 0.0, start: int = 0) -> None:
    queue = JobQueue(url, auto_migrate=url.startswith("sqlite"))  # (a new SQLite file has no tables yet)
    try:
        items = [{"n": n, "log": str(log), "seconds": seconds} for n in range(start, start + count)]
        for i in range(0, len(items), 1000):
            requests = [cluster_jobs.RecordRun.set().request(item, max_args_bytes=10_000) for item in items[i:i + 1000]]
            queue.enqueue(requests)
    finally:
        queue.close()


def completed(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM activejob_jobs WHERE status = 'completed'")[0][0])


def statuses(url: str) -> dict[str, int]:
    return dict(sql(url, "SELECT status, count(*) FROM activejob_jobs GROUP BY status"))  # type: ignore[arg-type]


def start(workers: Workers, url: str, *options: str, lease: float = 5.0, poll: float = 0.5) -> None:
    workers.start(url, *options, imports=JOBS, lease=lease, poll_interval=poll)


def activejob_connections(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE 'activejob%'")[0][0])


def test_four_workers_drain_thousands_each_exactly_once(db_url: str, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    total = 3000
    for _ in range(4):
        start(workers, db_url, "--concurrency", "8")

    # The registry: every worker process recorded itself.
    registry = "SELECT id, host, pid, queues, concurrency, started_at, heartbeat_at FROM activejob_workers"
    rows = wait_for(lambda: (lambda r: r if len(r) == 4 else None)(sql(db_url, registry)), what="4 worker rows")
    assert {r[2] for r in rows} == {w.pid for w in workers.started}
    assert all(r[1] and r[4] == 8 and r[5] is not None and r[6] is not None for r in rows)
    # Enqueued once all four are up: on a busy machine the first to start could otherwise
    # drain the lot before the others began.
    enqueue(db_url, log, total)

    peak = 0
    on_postgres = db_url.startswith("postgresql")

    def drained() -> bool:
        nonlocal peak
        if on_postgres:
            peak = max(peak, activejob_connections(db_url))
        return completed(db_url) == total

    wait_for(drained, 120, interval=0.2, what=f"{total} jobs completed: {statuses(db_url)}")
    runs = cluster_jobs.executions(str(log))
    assert len(runs) == total and set(runs.values()) == {1}, "every job ran exactly once"
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) >= 2, "the work was shared between processes"
    # Connection budget per worker: pool (pool_size 5, overflow up to 5 more), the worker's
    # own connection for claims and outcomes, and the listener.
    assert peak <= 4 * (2 * 5 + 2), peak

    for w in workers.started:
        w.signal(signal.SIGTERM)
    for w in workers.started:
        assert w.wait(30) == 0, w.output()
    assert sql(db_url, "SELECT count(*) FROM activejob_workers")[0][0] == 0, "stopped workers unregister"


def test_sigkill_one_of_three_workers_mid_drain(db_url: str, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    total = 600
    enqueue(db_url, log, total, seconds=0.01)
    for _ in range(3):
        start(workers, db_url, "--concurrency", "4", lease=2.0, poll=0.2)
    victim = workers.started[0]
    wait_for(lambda: any(line.endswith(f" {victim.pid}") for line in log.read_text().splitlines())
             if log.exists() else False, 60, what="the victim to run jobs")
    victim.signal(signal.SIGKILL)
    victim.wait(10)

    wait_for(lambda: completed(db_url) == total, 120, interval=0.2, what=f"all jobs completed: {statuses(db_url)}")
    runs = cluster_jobs.executions(str(log))
    assert set(runs) == set(range(total)), "no job lost"
    twice = [n for n, count in runs.items() if count > 1]
    assert len(twice) <= 4, f"only the victim's in-flight jobs may run again: {twice}"
    # The victim's registry row stops being live, and is removed by the survivors.
    wait_for(lambda: sql(db_url, "SELECT count(*) FROM activejob_workers WHERE pid = :pid", pid=victim.pid)[0][0] == 0,
             60, interval=0.2, what="the dead worker's row to be cleaned up")
    assert all(w.alive() for w in workers.started[1:])


def _drain_through(disrupt: Callable[[int], None], pg_url: str, workers: Workers, tmp_path: Path, *, total: int,
                   seconds: float, lease: float) -> Path:
    """Two workers drain `total` jobs; `disrupt(total)` runs once 200 are done; every job
    must still complete, and the workers must still be alive. Returns the runs log."""
    log = tmp_path / "runs.log"
    enqueue(pg_url, log, total, seconds=seconds)
    for _ in range(2):
        start(workers, pg_url, "--concurrency", "4", lease=lease, poll=0.2)
    wait_for(lambda: completed(pg_url) >= 200, 60, what="the drain to get going")
    disrupt(total)
    wait_for(lambda: completed(pg_url) == total, 120, interval=0.2, what=f"all jobs completed: {statuses(pg_url)}")
    runs = cluster_jobs.executions(str(log))
    assert set(runs) == set(range(total)), "no job lost"
    assert all(w.alive() for w in workers.started), "the workers carried on"
    return log


@postgres_only
def test_workers_survive_terminated_connections(pg_url: str, workers: Workers, tmp_path: Path) -> None:
    terminate = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")

    def cut_twice(total: int) -> None:
        killed = sql(pg_url, terminate)[0][0]
        assert killed >= 2, "each worker had connections to lose"
        done = completed(pg_url)
        wait_for(lambda: completed(pg_url) >= min(total, done + 200), 60, what="the drain to go on after the first cut")
        sql(pg_url, terminate)  # and once more, while they are busy again

    total = 2000
    log = _drain_through(cut_twice, pg_url, workers, tmp_path, total=total, seconds=0.001, lease=3.0)
    output = "".join(w.output() for w in workers.started)
    assert "terminating connection" in output or "connection" in output.lower()

    # The LISTEN connection came back too: a new job is picked up at once.
    enqueue(pg_url, log, 1, start=total)
    wait_for(lambda: completed(pg_url) == total + 1, 30, what="a job enqueued after the outages")


def _restart_postgres() -> None:
    """Restart this machine's PostgreSQL (Debian's pg_ctlcluster), or skip when we cannot."""
    clusters = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    if not clusters or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no local PostgreSQL cluster that this test may restart")
    version = clusters[-1].parent.name
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]
    try:
        subprocess.run([*command, "restart"], check=True, capture_output=True, timeout=60)
    finally:  # never leave the rest of the suite without its server
        subprocess.run([*command, "start"], capture_output=True, timeout=60)


def _answers(url: str) -> bool:
    try:
        return bool(sql(url, "SELECT 1"))
    except Exception:  # still starting
        return False


@postgres_only
@pytest.mark.serial  # restarts the server every other test process is using
def test_workers_carry_on_through_a_postgresql_restart(pg_url: str, workers: Workers, tmp_path: Path) -> None:
    def restart(_total: int) -> None:
        _restart_postgres()
        wait_for(lambda: _answers(pg_url), 30, interval=0.2, what="the server to be back")

    _drain_through(restart, pg_url, workers, tmp_path, total=1500, seconds=0.002, lease=5.0)


@postgres_only
def test_notify_wakes_an_idle_worker_in_another_process(pg_url: str, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    start(workers, pg_url, "--concurrency", "2", poll=30.0)
    wait_for(lambda: sql(pg_url, "SELECT count(*) FROM activejob_workers")[0][0] == 1, what="the worker to register")
    delays = []
    for n in range(3):
        enqueue(pg_url, log, 1, start=n)
        wait_for(lambda n=n: completed(pg_url) == n + 1, 10, interval=0.01, what=f"job {n} to run")
        created, started = sql(pg_url, "SELECT created_at, started_at FROM activejob_jobs WHERE id = :id", id=n + 1)[0]
        delays.append((started - created).total_seconds())
    # A 30 s poll interval: only the NOTIFY can have woken it this fast.
    assert max(delays) < 2.0, delays


@postgres_only
def test_store_pool_is_bounded(pg_url: str) -> None:
    store = Store(pg_url, pool_size=3)
    try:
        pool = store.engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool._max_overflow == 3  # type: ignore[attr-defined]
    finally:
        store.dispose()


def _stop_postgres_for(seconds: float) -> None:
    """Stop this machine's PostgreSQL for `seconds` (an outage), or skip when we cannot."""
    clusters = sorted(Path("/etc/postgresql").glob("*/main")) if Path("/etc/postgresql").is_dir() else []
    if not clusters or shutil.which("pg_ctlcluster") is None:
        pytest.skip("no local PostgreSQL cluster that this test may stop")
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1].parent.name, "main"]
    try:
        subprocess.run([*command, "stop", "-m", "fast"], check=True, capture_output=True, timeout=60)
        time.sleep(seconds)
    finally:  # never leave the rest of the suite without its server
        subprocess.run([*command, "start"], capture_output=True, timeout=60)


@postgres_only
@pytest.mark.serial  # stops the server every other test process is using
def test_outcomes_held_through_an_outage_are_written_before_anyone_recovers_their_leases(
        pg_url: str, workers: Workers, tmp_path: Path) -> None:
    # Two workers finish jobs while the database is away for longer than a lease; once it
    # is back, each must write what it holds before the other takes its expired leases.
    log = tmp_path / "runs.log"
    total = 60
    enqueue(pg_url, log, total, seconds=0.3)
    for _ in range(2):
        start(workers, pg_url, "--concurrency", "4", lease=2.0, poll=0.1)
    wait_for(lambda: completed(pg_url) >= 8, 30, what="the drain to start")
    _stop_postgres_for(5.0)
    wait_for(lambda: _answers(pg_url), 30, interval=0.2, what="the server to be back")
    wait_for(lambda: completed(pg_url) == total, 90, interval=0.2, what="every job to complete")
    runs = cluster_jobs.executions(str(log))
    assert sorted(runs) == list(range(total))
    assert {n: c for n, c in runs.items() if c > 1} == {}, "a finished job ran again"
    assert all(w.alive() for w in workers.started)
