"""What the peer runners share: the settings, PostgreSQL databases of their own, worker
processes that are always ended (each in its own session: `Spawned.stop` ends the whole
process group, also when interrupted), and the timing helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import ROOT, _dt, wait_until

WARMUP = 50  # enqueues before the timed ones, for every system
FILL_BATCH = 1_000


@dataclass
class PeerConfig:
    pg_admin_url: str  # SQLAlchemy URL of the server; databases for each system are created beside it
    redis_url: str
    workdir: Path
    jobs: int = 5_000
    concurrency: int = 4

    def dsn(self, database: str) -> str:
        """A libpq connection string (for huey and procrastinate) to `database` on the server."""
        return self.pg_admin_url.replace("+psycopg", "").rsplit("/", 1)[0] + f"/{database}"

    def drain_timeout(self) -> float:
        return 60 + self.jobs / 50  # at least 50 jobs/s, or something is wrong


def recreate_database(cfg: PeerConfig, name: str, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(cfg.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def wait_for_servers(cfg: PeerConfig, timeout: float = 120) -> None:
    import psycopg
    from redis import Redis

    def up() -> bool:
        try:
            with psycopg.connect(cfg.dsn("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            Redis.from_url(cfg.redis_url, socket_timeout=2).ping()
        except Exception:
            return False
        return True

    wait_until(up, timeout, "PostgreSQL and Redis", interval=1)


class Spawned:
    """A worker in its own session; stop() ends its whole process group, children included."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        full_env = {k: v for k, v in os.environ.items() if k != "ACTIVEJOB_DATABASE_URL"}
        full_env.update(env or {})
        with log.open("wb") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.proc.args[:4]} exited with {self.proc.returncode}:\n{tail}")

    def _signal_group(self, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group's id is the leader's pid (start_new_session)

    def stop(self, grace: float = 5) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left of it, also when interrupted."""
        try:
            self._signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
            deadline = time.monotonic() + 1  # children (rq's pool) may outlive their parent briefly
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                time.sleep(0.05)
        finally:
            self._signal_group(signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run_worker(argv: list[str], log: Path, done: Callable[[], bool], cfg: PeerConfig, what: str,
               env: dict[str, str] | None = None) -> None:
    """Start a worker, wait (bounded) until `done()`, and end it whatever happened."""
    worker = Spawned(argv, log, env)
    try:
        wait_until(done, cfg.drain_timeout(), what, worker.check, interval=0.1)
    finally:
        worker.stop()


def all_done(finished: int, succeeded: int, jobs: int, what: str) -> bool:
    """The drain is over when every job has finished; a job that failed makes it worthless."""
    if finished > succeeded:
        raise RuntimeError(f"{finished - succeeded} of {jobs} {what} jobs failed: see the worker's log")
    return succeeded >= jobs


def timed(call: Callable[[], Any], n: int) -> float:
    for _ in range(WARMUP):
        call()
    t = time.perf_counter()
    for _ in range(n):
        call()
    return n / (time.perf_counter() - t)


def _rate(jobs: int, first: Any, last: Any) -> float:
    return jobs / (_dt(last) - _dt(first)).total_seconds()
