"""The runners of `python -m bench --peers`: the same sync no-op job through activejob, huey,
procrastinate and rq, each with its own worker process at concurrency 4.

Each runner does two things on an empty store: `enqueue()` times single enqueues from this
process (one job per call, as perform_later), and `drain()` fills the queue beforehand, starts
the worker and returns jobs / (first job started .. last job finished) as the system itself
recorded it (see `bench/README.md` for how, per system). Every worker runs in its own
session (process group); `Spawned.stop` (bench/peer_procs.py) ends the whole group, also on
failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from .harness import ROOT, Config, Database, engine_for, fill
from .peer_procs import FILL_BATCH, PeerConfig, _rate, all_done, recreate_database, run_worker, timed


class Runner:
    system = ""  # activejob | huey | procrastinate | rq
    storage = ""  # sqlite | postgres | redis
    variant = ""  # e.g. "def perform"
    worker = ""  # how the worker is started, for the table
    processes = 1  # worker processes (besides any pool parent)
    measures_enqueue = True
    slug = ""  # the variant in the key, when its label does not make a good one

    def __init__(self, cfg: PeerConfig) -> None:
        self.cfg = cfg
        self.skip: str | None = None  # why this row cannot be measured (it stays in the table, marked)

    @property
    def key(self) -> str:
        return "_".join(p for p in (self.system, self.slug or self.variant.replace(" ", "_"), self.storage) if p)

    def log(self, what: str) -> Path:
        return self.cfg.workdir / f"{self.key}-{what}.log"

    def enqueue(self) -> float:
        raise NotImplementedError

    def drain(self) -> float:
        raise NotImplementedError

    def close(self) -> None:
        """Drop what the runner created (databases, keys)."""


class ActiveJobRunner(Runner):
    system = "activejob"

    def __init__(self, cfg: PeerConfig, storage: str, sync: bool, sqlite_synchronous: str | None = None,
                 pg_synchronous_commit: str | None = None) -> None:
        super().__init__(cfg)
        self.storage, self.sync = storage, sync
        self.synchronous = sqlite_synchronous  # None: activejob's default (NORMAL)
        # PostgreSQL's own setting, passed as libpq options in the database URL (see
        # docs/deployment.md): the worker and the enqueuing process both get it.
        self.synchronous_commit = pg_synchronous_commit
        self.variant = "def perform" if sync else "async def perform"
        if sqlite_synchronous:
            self.variant += f", sqlite_synchronous={sqlite_synchronous}"
            self.slug = f"def_perform_{sqlite_synchronous.lower()}" if sync else f"async_{sqlite_synchronous.lower()}"
        if pg_synchronous_commit:
            self.variant += f", synchronous_commit={pg_synchronous_commit}"
            self.slug = f"def_perform_commit_{pg_synchronous_commit}"
        self.measures_enqueue = sync  # enqueueing does not depend on the job's perform
        self.worker = f"activejob worker --concurrency {cfg.concurrency}"
        if sqlite_synchronous:
            self.worker += f" --sqlite-synchronous {sqlite_synchronous}"
        workdir = cfg.workdir / self.key  # SQLite files of its own
        workdir.mkdir(parents=True, exist_ok=True)
        self.db = Database(storage, Config(pg_admin_url=cfg.pg_admin_url), workdir,
                           name=f"activejob_bench_peers_{'sync' if sync else 'async'}"
                                f"{'_' + sqlite_synchronous.lower() if sqlite_synchronous else ''}"
                                f"{'_commit_' + pg_synchronous_commit if pg_synchronous_commit else ''}")
        if sqlite_synchronous:
            self.skip = self._unsupported()

    def _unsupported(self) -> str | None:
        """Why the setting cannot be measured with the activejob of this tree, if it cannot."""
        from activejob import JobQueue

        from .aj_worker import NotEffective, configure_checked

        try:
            configure_checked(self.db.fresh(), self.synchronous, auto_migrate=False)
        except NotEffective as error:
            return str(error)
        finally:
            JobQueue.reset()
        return None

    def _job(self) -> Any:
        from .jobs import Noop, SyncNoop

        return SyncNoop if self.sync else Noop

    def _fresh(self) -> str:
        url = self.db.fresh()
        if not self.synchronous_commit:
            return url
        options = {"options": f"-csynchronous_commit={self.synchronous_commit}"}
        return make_url(url).update_query_dict(options).render_as_string(hide_password=False)

    def enqueue(self) -> float:
        from activejob import JobQueue

        from .aj_worker import configure_checked

        configure_checked(self._fresh(), self.synchronous, auto_migrate=False)
        try:
            return timed(self._job().perform_later, self.cfg.jobs)
        finally:
            JobQueue.reset()

    def drain(self) -> float:
        url, n = self._fresh(), self.cfg.jobs
        fill(url, n, FILL_BATCH, self._job())
        argv = [sys.executable, "-m", "activejob", "worker", "--database-url", url, "--import", "bench.jobs",
                "--concurrency", str(self.cfg.concurrency), "--poll-interval", "1.0"]
        if self.synchronous:
            argv += ["--sqlite-synchronous", self.synchronous]
        from sqlalchemy import text

        counts = ("SELECT count(*) FILTER (WHERE status NOT IN ('pending', 'running')), "
                  "count(*) FILTER (WHERE status = 'completed') FROM activejob_jobs")

        def done() -> bool:
            with engine_for(url) as engine, engine.connect() as conn:
                finished, completed = conn.execute(text(counts)).one()
            return all_done(finished, completed, n, self.key)

        run_worker(argv, self.log("worker"), done, self.cfg, f"{n} {self.key} jobs")

        with engine_for(url) as engine, engine.connect() as conn:
            first, last = conn.execute(text("SELECT min(started_at), max(finished_at) FROM activejob_jobs")).one()
        return _rate(n, first, last)

    def close(self) -> None:
        self.db.drop()


class HueyRunner(Runner):
    system = "huey"
    variant = ""

    def __init__(self, cfg: PeerConfig, storage: str, synchronous: str | None = None) -> None:
        super().__init__(cfg)
        self.storage = storage
        self.synchronous = synchronous  # None: huey's default storage; "NORMAL": the subclass
        if synchronous:
            self.variant, self.slug = f"synchronous={synchronous}", synchronous.lower()
        self.worker = f"huey_consumer --workers {cfg.concurrency} --worker-type thread"
        self.counter = 0

    def _fresh(self) -> str:
        if self.storage == "sqlite":
            self.counter += 1
            return str(self.cfg.workdir / f"{self.key}-{self.counter}.db")
        recreate_database(self.cfg, "activejob_bench_huey")
        return self.cfg.dsn("activejob_bench_huey")

    def enqueue(self) -> float:
        from .peer_huey import make

        huey, noop = make(self.storage, self._fresh(), self.synchronous)
        try:
            return timed(noop, self.cfg.jobs)
        finally:
            huey.storage.close()

    def drain(self) -> float:
        from .peer_huey import make

        target, n = self._fresh(), self.cfg.jobs
        huey, noop = make(self.storage, target, self.synchronous)
        try:
            for _ in range(n):  # huey has no bulk enqueue
                noop()
        finally:
            huey.storage.close()
        marks = self.cfg.workdir / f"{self.key}-marks.json"
        marks.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "huey.bin.huey_consumer", "bench.peer_huey.huey",
                "--workers", str(self.cfg.concurrency), "--worker-type", "thread", "--quiet"]
        env = {"BENCH_HUEY_KIND": self.storage, "BENCH_HUEY_TARGET": target,
               "BENCH_HUEY_SYNCHRONOUS": self.synchronous or "", "BENCH_MARKS_FILE": str(marks),
               "BENCH_MARKS_JOBS": str(n)}
        errors = marks.with_suffix(".errors")
        errors.unlink(missing_ok=True)

        def done() -> bool:
            if errors.exists():
                raise RuntimeError(f"huey jobs failed: {errors.read_text()[:500]}")
            return marks.exists()

        run_worker(argv, self.log("consumer"), done, self.cfg, f"{n} {self.key} jobs", env)
        got = json.loads(marks.read_text())
        return n / (got["last_finished"] - got["first_started"])

    def close(self) -> None:
        if self.storage == "postgres":
            recreate_database(self.cfg, "activejob_bench_huey", drop_only=True)


class ProcrastinateRunner(Runner):
    system = "procrastinate"
    storage = "postgres"
    DB = "activejob_bench_procrastinate"

    def __init__(self, cfg: PeerConfig) -> None:
        super().__init__(cfg)
        self.worker = f"procrastinate worker --concurrency {cfg.concurrency}"
        self.env = {"BENCH_PROCRASTINATE_DSN": cfg.dsn(self.DB)}
        os.environ.update(self.env)  # read by bench.peer_procrastinate when imported here

    def _fresh(self) -> None:
        recreate_database(self.cfg, self.DB)
        argv = [sys.executable, "-m", "procrastinate", "--app=bench.peer_procrastinate.app", "schema", "--apply"]
        subprocess.run(argv, cwd=ROOT, env={**os.environ, **self.env}, check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def enqueue(self) -> float:
        from .peer_procrastinate import app, noop

        self._fresh()
        app.open()
        try:
            return timed(noop.defer, self.cfg.jobs)
        finally:
            app.close()

    def drain(self) -> float:
        from .peer_procrastinate import app, noop

        self._fresh()
        n = self.cfg.jobs
        app.open()
        try:
            for start in range(0, n, FILL_BATCH):
                noop.batch_defer(*[{}] * min(FILL_BATCH, n - start))
        finally:
            app.close()
        dsn = self.cfg.dsn(self.DB)
        argv = [sys.executable, "-m", "procrastinate", "--app=bench.peer_procrastinate.app", "worker",
                "--concurrency", str(self.cfg.concurrency)]
        counts = ("SELECT count(*) FILTER (WHERE status NOT IN ('todo', 'doing')), "
                  "count(*) FILTER (WHERE status = 'succeeded') FROM procrastinate_jobs")
        run_worker(argv, self.log("worker"), lambda: all_done(*_pg_row(dsn, counts), n, "procrastinate"), self.cfg,
                   f"{n} procrastinate jobs", self.env)
        first, last = _pg_row(dsn, "SELECT min(at) FILTER (WHERE type = 'started'), "
                                   "max(at) FILTER (WHERE type = 'succeeded') FROM procrastinate_events")
        return _rate(n, first, last)

    def close(self) -> None:
        recreate_database(self.cfg, self.DB, drop_only=True)


def _pg_row(dsn: str, sql: str) -> tuple[Any, ...]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


class RqRunner(Runner):
    system = "rq"
    storage = "redis"
    QUEUE = "activejob-bench"

    def __init__(self, cfg: PeerConfig, worker_class: str = "SimpleWorker") -> None:
        super().__init__(cfg)
        self.worker_class = worker_class
        self.variant = "" if worker_class == "SimpleWorker" else worker_class
        self.worker = f"rq worker-pool --num-workers {cfg.concurrency} --worker-class {worker_class}"
        self.processes = cfg.concurrency  # rq's concurrency is processes: one job at a time each

    def _redis(self) -> Any:
        from redis import Redis

        return Redis.from_url(self.cfg.redis_url)

    def _fresh(self) -> Any:
        """Delete rq's keys (and only those) in the benchmark's Redis database."""
        redis = self._redis()
        keys = list(redis.scan_iter("rq:*", count=1000))
        for start in range(0, len(keys), 1000):
            redis.delete(*keys[start:start + 1000])
        return redis

    def enqueue(self) -> float:
        from rq import Queue

        from .peer_rq import noop

        queue = Queue(self.QUEUE, connection=self._fresh())
        return timed(lambda: queue.enqueue(noop), self.cfg.jobs)

    def drain(self) -> float:
        from rq import Queue

        from .peer_rq import noop

        redis, n = self._fresh(), self.cfg.jobs
        queue = Queue(self.QUEUE, connection=redis)
        ids: list[str] = []
        for start in range(0, n, FILL_BATCH):
            batch = [Queue.prepare_data(noop) for _ in range(min(FILL_BATCH, n - start))]
            ids += [job.id for job in queue.enqueue_many(batch)]
        argv = [sys.executable, "-m", "rq.cli", "worker-pool", "--num-workers", str(self.cfg.concurrency),
                "--worker-class", f"rq.worker.{self.worker_class}", "--url", self.cfg.redis_url,
                "--path", str(ROOT), "--logging-level", "WARNING", self.QUEUE]
        finished, failed = queue.finished_job_registry, queue.failed_job_registry

        def done() -> bool:
            succeeded = finished.count
            return all_done(succeeded + failed.count, succeeded, n, "rq")

        run_worker(argv, self.log("pool"), done, self.cfg, f"{n} rq jobs")
        pipe = redis.pipeline()
        for job_id in ids:
            pipe.hmget(f"rq:job:{job_id}", "started_at", "ended_at")
        rows = pipe.execute()
        first = min(_rq_time(s) for s, _ in rows)
        last = max(_rq_time(e) for _, e in rows)
        return _rate(n, first, last)

    def close(self) -> None:
        self._fresh()


def _rq_time(value: bytes) -> datetime:
    from rq.utils import utcparse

    return utcparse(value.decode())
