"""The benchmark: enqueue throughput, drain throughput, latency and memory, on SQLite
(a file, WAL) and PostgreSQL, with no-op jobs so what is measured is the queue itself.

Every number is the median of `--runs` runs (3 by default). Drains and the
other-process latency use real `activejob worker` subprocesses; drain throughput is
jobs / (last finished_at - first started_at), read from the jobs table, so process
start-up is not counted. Results go to bench/results/latest.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_PG = os.environ.get("ACTIVEJOB_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BENCH_DB = "activejob_bench"

# (metric, unit, better, SQLite target, PostgreSQL target) - targets for a 2-core machine.
TARGETS: dict[str, tuple[str, str, float | None, float | None]] = {
    "enqueue_single": ("jobs/s", "higher", 7500, 2200),
    "enqueue_bulk": ("jobs/s", "higher", 50000, 20000),
    "enqueue_unique": ("jobs/s", "higher", None, None),
    "enqueue_duplicate": ("jobs/s", "higher", None, None),
    "drain_p1_c1": ("jobs/s", "higher", None, None),
    "drain_p1_c4": ("jobs/s", "higher", 5000, 2200),
    "drain_p1_c16": ("jobs/s", "higher", None, None),
    "drain_p2_c4": ("jobs/s", "higher", None, 3000),
    "drain_p4_c4": ("jobs/s", "higher", None, None),
    "latency_other_p50": ("ms", "lower", 10, 2),
    "latency_other_p99": ("ms", "lower", 50, 10),
    "latency_same_p50": ("ms", "lower", 2, 2),
    "latency_same_p99": ("ms", "lower", None, None),
    "drain_peak_rss": ("MB", "lower", 150, 150),
    "big_drain_rate": ("jobs/s", "higher", None, None),
    "big_drain_peak_rss": ("MB", "lower", 150, 150),
    "big_drain_rss_growth": ("MB", "lower", None, None),
}


@dataclass
class Config:
    runs: int = 3
    drain_jobs: int = 20_000
    single_jobs: int = 5_000
    bulk_jobs: int = 20_000
    bulk_batch: int = 1_000
    latency_jobs: int = 200
    latency_gap: float = 0.020
    big_jobs: int = 100_000
    big: bool = False
    backends: tuple[str, ...] = ("sqlite", "postgres")
    pg_admin_url: str = DEFAULT_PG
    worker_poll: float = 1.0
    results: dict[str, dict[str, list[float]]] = field(default_factory=dict)


# -- databases ---------------------------------------------------------------------------


class Database:
    """One backend's database, emptied before each measurement."""

    def __init__(self, kind: str, cfg: Config, workdir: Path, name: str = BENCH_DB) -> None:
        self.kind = kind
        self.name = name
        self.cfg = cfg
        self.workdir = workdir
        self.counter = 0
        if kind == "postgres":
            admin = create_engine(cfg.pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                self.server_version = conn.execute(text("SHOW server_version")).scalar()
            admin.dispose()
            self.url = cfg.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
        else:
            self.server_version = sqlite3.sqlite_version
            self.url = ""

    def fresh(self) -> str:
        """A URL to an empty, migrated database."""
        from activejob import JobQueue

        if self.kind == "sqlite":
            self.counter += 1
            path = self.workdir / f"bench-{self.counter}.db"
            self.url = f"sqlite:///{path}"
            queue = JobQueue(self.url)
            queue.store.upgrade()
            queue.close()
            return self.url
        queue = JobQueue(self.url)
        queue.store.upgrade()
        with queue.store.engine.begin() as conn:
            conn.execute(text("TRUNCATE activejob_jobs, activejob_events, activejob_workers, "
                              "activejob_paused_queues RESTART IDENTITY"))
        with queue.store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE activejob_jobs, activejob_events"))
        queue.close()
        return self.url

    def drop(self) -> None:
        if self.kind == "postgres":
            admin = create_engine(self.cfg.pg_admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            admin.dispose()


@contextmanager
def engine_for(url: str) -> Iterator[Any]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def scalar(url: str, sql: str) -> Any:
    with engine_for(url) as engine, engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _dt(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- worker subprocesses -----------------------------------------------------------------


class WorkerProcs:
    """`activejob worker` subprocesses, with their peak RSS sampled while they run."""

    def __init__(self, url: str, processes: int, concurrency: int, poll: float) -> None:
        argv = [sys.executable, "-m", "activejob", "worker", "--database-url", url, "--import", "bench.jobs",
                "--concurrency", str(concurrency), "--poll-interval", str(poll)]
        env = {k: v for k, v in os.environ.items() if k != "ACTIVEJOB_DATABASE_URL"}
        self.procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                      for _ in range(processes)]
        self.peak_rss = 0
        self.samples: list[tuple[float, int]] = []  # (time, max RSS over the processes)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        handles = [psutil.Process(p.pid) for p in self.procs]
        while not self._stop.wait(0.05):
            rss = 0
            for h in handles:
                try:
                    rss = max(rss, h.memory_info().rss)
                except psutil.NoSuchProcess:
                    continue
            if rss:
                self.peak_rss = max(self.peak_rss, rss)
                self.samples.append((time.monotonic(), rss))

    def check(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                raise RuntimeError(f"worker {p.pid} exited with {p.returncode}:\n{err[-3000:]}")

    def stop(self) -> None:
        self._stop.set()
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stderr:
                p.stderr.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, check: Callable[[], None] | None = None,
               interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# -- measurements ------------------------------------------------------------------------


def _configure(url: str, **options: Any) -> Any:
    import activejob

    return activejob.configure(url, auto_migrate=False, **options)


def measure_enqueue(url: str, cfg: Config) -> dict[str, float]:
    from activejob import JobQueue

    from .jobs import Noop

    _configure(url)
    for _ in range(50):
        Noop.perform_later()  # warm up: connections, prepared statements
    n = cfg.single_jobs
    t = time.perf_counter()
    for _ in range(n):
        Noop.perform_later()
    single = n / (time.perf_counter() - t)
    items = [{}] * cfg.bulk_batch
    batches = max(1, cfg.bulk_jobs // cfg.bulk_batch)
    t = time.perf_counter()
    for _ in range(batches):
        Noop.perform_all_later(items)
    bulk = batches * cfg.bulk_batch / (time.perf_counter() - t)
    keyed = Noop.set(unique_key=lambda _args: next(keys))  # a key per call, from `keys`
    keys = iter(range(50))
    for _ in range(50):
        keyed.perform_later()
    keys = iter(range(50, 50 + n))
    t = time.perf_counter()
    for _ in range(n):
        keyed.perform_later()
    unique = n / (time.perf_counter() - t)
    keys = iter(range(50, 50 + n))  # the same keys again: each held by a pending job
    t = time.perf_counter()
    for _ in range(n):
        keyed.perform_later()
    duplicate = n / (time.perf_counter() - t)
    JobQueue.reset()
    return {"enqueue_single": single, "enqueue_bulk": bulk, "enqueue_unique": unique, "enqueue_duplicate": duplicate}


def fill(url: str, count: int, batch: int = 5_000, job: Any = None) -> None:
    from activejob import JobQueue

    from .jobs import Noop

    job = job or Noop
    _configure(url)
    for start in range(0, count, batch):
        job.perform_all_later([{}] * min(batch, count - start))
    JobQueue.reset()


def measure_drain(url: str, cfg: Config, processes: int, concurrency: int, jobs: int
                  ) -> tuple[float, WorkerProcs]:
    fill(url, jobs)
    workers = WorkerProcs(url, processes, concurrency, cfg.worker_poll)
    try:
        done = "SELECT count(*) FROM activejob_jobs WHERE status = 'completed'"
        wait_until(lambda: scalar(url, done) >= jobs, 60 + jobs / 200, f"{jobs} jobs drained", workers.check,
                   interval=0.25)
    finally:
        workers.stop()
    with engine_for(url) as engine, engine.connect() as conn:
        first, last = conn.execute(text("SELECT min(started_at), max(finished_at) FROM activejob_jobs")).one()
    return jobs / (_dt(last) - _dt(first)).total_seconds(), workers


def _latencies(url: str) -> list[float]:
    with engine_for(url) as engine, engine.connect() as conn:
        rows = conn.execute(text("SELECT created_at, started_at FROM activejob_jobs WHERE started_at IS NOT NULL "
                                 "ORDER BY id")).all()
    return [(_dt(s) - _dt(c)).total_seconds() * 1000 for c, s in rows]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def _paced_enqueue(url: str, cfg: Config) -> None:
    from .jobs import Noop

    count = cfg.latency_jobs
    done = "SELECT count(*) FROM activejob_jobs WHERE status = 'completed'"
    Noop.perform_later()  # warm-up job, not counted
    wait_until(lambda: scalar(url, done) >= 1, 30, "the warm-up job")
    with engine_for(url) as engine, engine.begin() as conn:
        conn.execute(text("DELETE FROM activejob_jobs"))
    next_at = time.perf_counter()
    for _ in range(count):
        Noop.perform_later()
        next_at += cfg.latency_gap
        time.sleep(max(0.0, next_at - time.perf_counter()))
    wait_until(lambda: scalar(url, done) >= count, 60, f"{count} paced jobs")


def measure_latency_other(url: str, cfg: Config) -> dict[str, float]:
    from activejob import JobQueue

    workers = WorkerProcs(url, 1, 4, cfg.worker_poll)
    try:
        wait_until(lambda: scalar(url, "SELECT count(*) FROM activejob_workers") >= 1, 60, "the worker to start",
                   workers.check)
        _configure(url, watch=False)  # this process only enqueues
        _paced_enqueue(url, cfg)
    finally:
        JobQueue.reset()
        workers.stop()
    lat = _latencies(url)
    return {"latency_other_p50": _percentile(lat, 50), "latency_other_p99": _percentile(lat, 99)}


def measure_latency_same(url: str, cfg: Config) -> dict[str, float]:
    from activejob import JobQueue

    queue = _configure(url, concurrency=4, poll_interval=cfg.worker_poll)
    queue.start()
    try:
        _paced_enqueue(url, cfg)
    finally:
        queue.stop(grace=5)
        JobQueue.reset()
    lat = _latencies(url)
    return {"latency_same_p50": _percentile(lat, 50), "latency_same_p99": _percentile(lat, 99)}


def drain_configs(kind: str) -> list[tuple[int, int]]:
    configs = [(1, 1), (1, 4), (1, 16)]
    if kind == "postgres":
        configs += [(2, 4), (4, 4)]
    return configs


def run_backend(kind: str, cfg: Config, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    db = Database(kind, cfg, workdir)
    results: dict[str, list[float]] = {}

    def add(values: dict[str, float]) -> None:
        for key, value in values.items():
            results.setdefault(key, []).append(value)

    try:
        for run in range(cfg.runs):
            log(f"[{kind}] run {run + 1}/{cfg.runs}: enqueue")
            add(measure_enqueue(db.fresh(), cfg))
            rss = 0
            for processes, concurrency in drain_configs(kind):
                log(f"[{kind}] run {run + 1}/{cfg.runs}: drain {cfg.drain_jobs} jobs, {processes} process(es), "
                    f"concurrency {concurrency}")
                rate, workers = measure_drain(db.fresh(), cfg, processes, concurrency, cfg.drain_jobs)
                add({f"drain_p{processes}_c{concurrency}": rate})
                rss = max(rss, workers.peak_rss)
            add({"drain_peak_rss": rss / 2**20})
            log(f"[{kind}] run {run + 1}/{cfg.runs}: latency")
            add(measure_latency_other(db.fresh(), cfg))
            add(measure_latency_same(db.fresh(), cfg))
        if cfg.big:
            log(f"[{kind}] big drain: {cfg.big_jobs} jobs, 1 process, concurrency 4")
            rate, workers = measure_drain(db.fresh(), cfg, 1, 4, cfg.big_jobs)
            rss = [r for _, r in workers.samples]
            early = statistics.median(rss[len(rss) // 10: len(rss) // 10 + 20] or rss)  # after warm-up
            late = statistics.median(rss[-40:-20] or rss)
            add({"big_drain_rate": rate, "big_drain_peak_rss": workers.peak_rss / 2**20,
                 "big_drain_rss_growth": (late - early) / 2**20})
    finally:
        db.drop()
    return {"server_version": db.server_version, "runs": results,
            "median": {k: statistics.median(v) for k, v in results.items()}}


# -- report ------------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    import anyio
    import sqlalchemy

    import activejob

    out: dict[str, Any] = {
        "activejob": activejob.__version__, "python": platform.python_version(), "sqlalchemy": sqlalchemy.__version__,
        "anyio": anyio.__version__ if hasattr(anyio, "__version__") else _dist_version("anyio"),
        "sqlite": sqlite3.sqlite_version, "platform": platform.platform(), "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }
    try:
        import psycopg

        out["psycopg"] = psycopg.__version__
    except ImportError:
        pass
    with suppress(OSError):
        out["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                    text=True, check=False).stdout.strip()
    return out


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f}"
    if unit == "MB":
        return f"{value:.0f}"
    return f"{value:,.0f}"


def _verdict(value: float | None, target: float | None, better: str) -> str:
    if value is None or target is None:
        return ""
    ok = value >= target if better == "higher" else value <= target
    return " ok" if ok else " MISS"


LABELS = {
    "enqueue_single": "enqueue, one perform_later per call",
    "enqueue_bulk": "enqueue, perform_all_later (1,000 per call)",
    "enqueue_unique": "enqueue, one job with a new unique key per call",
    "enqueue_duplicate": "enqueue, a duplicate of a held unique key (skipped)",
    "drain_p1_c1": "drain, 1 process, concurrency 1",
    "drain_p1_c4": "drain, 1 process, concurrency 4",
    "drain_p1_c16": "drain, 1 process, concurrency 16",
    "drain_p2_c4": "drain, 2 processes, concurrency 4",
    "drain_p4_c4": "drain, 4 processes, concurrency 4",
    "latency_other_p50": "latency enqueue→start, other process, p50",
    "latency_other_p99": "latency enqueue→start, other process, p99",
    "latency_same_p50": "latency enqueue→start, same process, p50",
    "latency_same_p99": "latency enqueue→start, same process, p99",
    "drain_peak_rss": "worker peak RSS during the drains",
    "big_drain_rate": "100k drain, 1 process, concurrency 4",
    "big_drain_peak_rss": "100k drain: worker peak RSS",
    "big_drain_rss_growth": "100k drain: RSS growth after warm-up",
}


def table(report: dict[str, Any]) -> str:
    backends = report["backends"]
    lines = [
        "| metric | unit | SQLite | target | PostgreSQL | target |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, (unit, better, t_sqlite, t_pg) in TARGETS.items():
        values = [backends.get(b, {}).get("median", {}).get(key) for b in ("sqlite", "postgres")]
        if all(v is None for v in values):
            continue
        cells = []
        for value, target in zip(values, (t_sqlite, t_pg), strict=True):
            cells.append(_fmt(value, unit) + _verdict(value, target, better))
            sign = "≥" if better == "higher" else "≤"
            cells.append(f"{sign} {_fmt(target, unit)}" if target is not None else "")
        lines.append(f"| {LABELS[key]} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


DOCS = (ROOT / "docs" / "benchmark.md", ROOT / "bench" / "README.md")
START, END = "<!-- table -->", "<!-- /table -->"


def render_docs(report: dict[str, Any]) -> None:
    """Put the table (and how it was made) between the markers of the docs that show it."""
    v, settings = report["versions"], report["settings"]
    pg = report["backends"].get("postgres", {}).get("server_version")
    about = (
        f"Medians of {settings['runs']} run(s), {report['when']}, commit {v.get('git', '?')}: "
        f"{v['cpus']} CPUs, {v['memory_gb']} GB, {v['platform']}; Python {v['python']}, SQLAlchemy "
        f"{v['sqlalchemy']}, psycopg {v.get('psycopg', '-')}, SQLite {v['sqlite']}, PostgreSQL {pg or '-'}. "
        f"The database server, the benchmark and the workers share the machine. `ok` / `MISS`: against the "
        f"target for a 2-core machine."
    )
    block = f"{START}\n{about}\n\n{report['table']}\n{END}"
    for path in DOCS:
        text_ = path.read_text()
        if START not in text_:
            continue
        head, rest = text_.split(START, 1)
        tail = rest.split(END, 1)[1] if END in rest else rest.split("\n", 1)[1] if "\n" in rest else ""
        path.write_text(head + block + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: small counts, one run")
    parser.add_argument("--big", action="store_true", help="also drain 100,000 jobs and watch the worker's RSS")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (median is reported; default 3)")
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None, help="one backend only")
    parser.add_argument("--pg-url", default=DEFAULT_PG,
                        help=f"PostgreSQL URL used to create the {BENCH_DB!r} database (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where the JSON goes (default bench/results/latest.json; with --peers, peers.json; "
                             "with --scale, scale.json)")
    parser.add_argument("--docs", action="store_true",
                        help="put the table into docs/benchmark.md and bench/README.md (with --render: from --out)")
    parser.add_argument("--render", action="store_true", help="do not measure: print the table of --out")
    from . import peers_report, scale

    peers_report.add_arguments(parser)
    scale.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.peers and args.scale:
        parser.error("--peers and --scale are separate runs")
    if args.peers:
        return peers_report.main(args)
    if args.scale:
        return scale.main(args)
    args.out = args.out or RESULTS / "latest.json"
    if args.render:
        report = json.loads(args.out.read_text())
        report["table"] = table(report)  # the stored numbers against today's targets
        print(report["table"])
        if args.docs:
            render_docs(report)
        return 0

    cfg = Config(pg_admin_url=args.pg_url, big=args.big)
    if args.quick:
        cfg.runs, cfg.drain_jobs, cfg.single_jobs, cfg.bulk_jobs = 1, 2_000, 500, 5_000
        cfg.latency_jobs, cfg.big_jobs = 50, 20_000
    if args.runs is not None:
        cfg.runs = args.runs
    if args.only:
        cfg.backends = (args.only,)
    sys.path.insert(0, str(ROOT))

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "settings": {
            "runs": cfg.runs, "quick": args.quick, "drain_jobs": cfg.drain_jobs, "single_jobs": cfg.single_jobs,
            "bulk_jobs": cfg.bulk_jobs, "bulk_batch": cfg.bulk_batch, "latency_jobs": cfg.latency_jobs,
            "latency_gap_ms": cfg.latency_gap * 1000, "big_jobs": cfg.big_jobs if cfg.big else None,
            "worker_poll_interval": cfg.worker_poll, "sqlite": "file, WAL, synchronous=NORMAL",
            "postgres": cfg.pg_admin_url.rsplit("/", 1)[0].split("@")[-1], "job": "bench_noop (async, returns None)",
        },
        "targets": {k: {"unit": u, "better": b, "sqlite": s, "postgres": p} for k, (u, b, s, p) in TARGETS.items()},
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="activejob-bench-") as tmp:
        for kind in cfg.backends:
            report["backends"][kind] = run_backend(kind, cfg, Path(tmp), log)
    report["table"] = table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(report["table"])
    print(f"\n(medians of {cfg.runs} run(s); JSON in {args.out})")
    if args.docs:
        render_docs(report)
    return 0
