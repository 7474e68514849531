"""Helpers for the runner tests: waiting on conditions, worker subprocesses, raw SQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from sqlalchemy import create_engine, inspect, text

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
T = TypeVar("T")


def unavailable(problem: str, what: str) -> NoReturn:
    """Skip a test whose service or tool is missing here; fail instead under CI, which has them."""
    if IN_CI:
        pytest.fail(f"{problem} ({what} are required under CI)")
    pytest.skip(problem)


def wait_for(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.02, what: str = "") -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def job_info(queue: Any, job_id: int) -> Any:
    """The stored job `job_id`, which must exist."""
    info = queue.get_job(job_id)
    assert info is not None, f"no job {job_id}"
    return info


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement on the test database with a separate engine; return its rows."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


class WorkerProcess:
    """An `activejob worker` subprocess; its output goes to a file we can read."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in kill()
        env = {**os.environ, "AJ_TEST_WORKER": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("ACTIVEJOB_DATABASE_URL", None)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"worker {self.pid} still running after {timeout}s:\n{self.output()}") from None

    def kill(self) -> None:
        if self.alive():
            with_cont = True
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                with_cont = False
            if with_cont:
                self.proc.wait(10)
        self._log.close()


class Workers:
    """Starts worker subprocesses for one test and kills every one of them after it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[WorkerProcess] = []

    def start(self, url: str, *options: str, module: bool = True, imports: str = "tests.jobs_for_workers",
              lease: float | None = 2.0, poll_interval: float | None = 0.05, wait_ready: bool = True
              ) -> WorkerProcess:
        head = [sys.executable, "-m", "activejob"] if module else [str(Path(sys.executable).parent / "activejob")]
        argv = [*head, "worker", "--database-url", url, "--import", imports]
        if lease is not None:
            argv += ["--lease", str(lease)]
        if poll_interval is not None:
            argv += ["--poll-interval", str(poll_interval)]
        argv += list(options)
        worker = WorkerProcess(argv, self.tmp_path / f"worker-{len(self.started)}.log")
        self.started.append(worker)
        if wait_ready:
            wait_for(lambda: "started: concurrency" in worker.output() or not worker.alive(), 30,
                     what="the worker subprocess to start")
            assert worker.alive(), worker.output()
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@contextmanager
def workers_for(tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()


def pause(worker: WorkerProcess, url: str, job_id: int, attempts: int = 50) -> None:
    """SIGSTOP `worker` at a moment it holds no lock the others need.

    A process stopped inside a write transaction would block every other writer
    (SQLite's single write lock; PostgreSQL's lock on the job row), which is not the
    situation under test: a worker that stalls while its job runs.
    """
    engine = create_engine(url)
    try:
        for _ in range(attempts):
            worker.signal(signal.SIGSTOP)
            try:
                with engine.connect() as conn:
                    if engine.dialect.name == "sqlite":
                        conn.exec_driver_sql("PRAGMA busy_timeout = 100")
                        conn.exec_driver_sql("BEGIN IMMEDIATE")
                        conn.exec_driver_sql("ROLLBACK")
                    else:
                        with conn.begin():
                            conn.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
                            conn.execute(text("SELECT id FROM activejob_jobs WHERE id = :id FOR UPDATE"),
                                         {"id": job_id})
                return
            except Exception:
                worker.signal(signal.SIGCONT)
                time.sleep(0.05)
        raise AssertionError("could not pause the worker outside a transaction")
    finally:
        engine.dispose()


def run_bounded(argv: list[str], timeout: float, *, cwd: Path = ROOT, merge_stderr: bool = False
                ) -> subprocess.CompletedProcess[str]:
    """Run a command that must end on its own within `timeout`; if it does not, it is killed
    with every process it started (a supervisor's children live in their own process group)."""
    import contextlib

    import psutil

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"{argv[:6]} still running after {timeout}s:\n{(err or out)[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err or "")


def one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """A command refused with one line on stderr, `Error: ...`, exit code 1, holding `words`."""
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for word in words:
        assert word in lines[0], done.stderr
    return lines[0]


def table_names(url: str) -> set[str]:
    """The tables in the database at `url` (read with an engine of its own)."""
    from activejob.dialects import normalize_url

    engine = create_engine(normalize_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
