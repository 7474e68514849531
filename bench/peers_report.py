"""`python -m bench --peers`: activejob against huey, procrastinate and rq, in one run, on one
machine, with the same sync no-op job, the same concurrency (4) and a worker process each.

Per run, every system's single enqueues are measured in turn, then every system's drain of
`--jobs` jobs queued beforehand (the order rotates from run to run, so no system always
follows the same neighbour). Each figure is the median of `--runs` runs; the ratios are ratios of medians.
Results go to bench/results/peers.json and a markdown table on stdout; `--docs` puts the
table into docs/benchmark.md, and `--render` prints (and with `--docs` writes) a stored one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .harness import RESULTS, ROOT, versions

DEFAULT_REDIS = os.environ.get("ACTIVEJOB_BENCH_REDIS", "redis://127.0.0.1:6379/11")
SYSTEMS = ("activejob", "huey", "procrastinate", "rq")
STORAGE = {"sqlite": "SQLite file", "postgres": "PostgreSQL", "redis": "Redis"}
PEER_PACKAGES = ("huey", "procrastinate", "rq", "redis")
START, END = "<!-- peers -->", "<!-- /peers -->"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("against the peers (--peers)")
    group.add_argument("--peers", action="store_true",
                       help="compare with huey, procrastinate and rq (needs the 'bench' extra); "
                            "honours --runs, --quick, --pg-url, --out, --render, --docs")
    group.add_argument("--jobs", type=int, default=None, help="jobs per drain and per enqueue measurement (5,000)")
    group.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset of %(default)s")
    group.add_argument("--redis-url", default=DEFAULT_REDIS,
                       help="Redis database for rq; only its rq:* keys are touched (default %(default)s)")
    group.add_argument("--rq-fork", action="store_true",
                       help="also run rq with its default Worker class (a forked work horse per job)")


def _runners(cfg: Any, systems: set[str], rq_fork: bool) -> list[Any]:
    from . import peers

    out: list[Any] = []
    for storage in ("sqlite", "postgres"):
        if "activejob" in systems:
            out += [peers.ActiveJobRunner(cfg, storage, sync=True), peers.ActiveJobRunner(cfg, storage, sync=False)]
            if storage == "sqlite":  # huey's default durability (FULL), for the like-for-like ratio
                out.append(peers.ActiveJobRunner(cfg, storage, sync=True, sqlite_synchronous="FULL"))
            else:  # a commit that does not wait for its WAL flush: what a single enqueue costs without it
                out.append(peers.ActiveJobRunner(cfg, storage, sync=True, pg_synchronous_commit="off"))
        if "huey" in systems:
            out.append(peers.HueyRunner(cfg, storage))  # huey as it ships: SQLite's default, FULL
            if storage == "sqlite":
                out.append(peers.HueyRunner(cfg, storage, synchronous="NORMAL"))
    if "procrastinate" in systems:
        out.append(peers.ProcrastinateRunner(cfg))
    if "rq" in systems:
        out.append(peers.RqRunner(cfg))
        if rq_fork:
            out.append(peers.RqRunner(cfg, "Worker"))
    return out


def _package_versions() -> dict[str, str]:
    found = {}
    for name in PEER_PACKAGES:
        with suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _dirty() -> bool | None:
    """Whether activejob/ differs from the commit (the numbers are then of the work tree)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "activejob"], cwd=ROOT, capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.strip())


def measure(args: argparse.Namespace, log: Any) -> dict[str, Any]:
    from .peer_procs import PeerConfig

    runs = args.runs or (1 if args.quick else 3)
    jobs = args.jobs or (500 if args.quick else 5_000)
    systems = {s.strip() for s in args.systems.split(",") if s.strip()}
    needs = {"huey": ["huey"], "procrastinate": ["procrastinate"], "rq": ["rq", "redis"]}
    missing = [p for s in systems for p in needs.get(s, []) if p not in _package_versions()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: .venv/bin/pip install -e '.[postgres,web,dev,bench]'")
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {**versions(), **_package_versions(), "activejob_tree_dirty": _dirty()},
        "settings": {"runs": runs, "jobs": jobs, "concurrency": 4, "warmup_enqueues": 50,
                     "postgres": args.pg_url.rsplit("/", 1)[0].split("@")[-1], "redis": args.redis_url},
        "systems": {},
        "load_average_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="activejob-bench-peers-") as tmp:
        cfg = PeerConfig(pg_admin_url=args.pg_url, redis_url=args.redis_url, workdir=Path(tmp), jobs=jobs)
        runners: list[Any] = []
        try:
            runners = _runners(cfg, systems, args.rq_fork)
            for r in runners:
                report["systems"][r.key] = {"system": r.system, "storage": r.storage, "variant": r.variant,
                                            "worker": r.worker, "processes": r.processes,
                                            "runs": {"drain": [], "enqueue": []}}
                if r.skip:
                    report["systems"][r.key]["skipped"] = r.skip
                    log(f"skipping {r.key}: {r.skip}")
            active = [r for r in runners if not r.skip]
            for run in range(runs):
                shift = run % max(1, len(active))
                turn = active[shift:] + active[:shift]
                # Every system's enqueues first, back to back, then the drains: enqueue rates
                # follow the CPU this shared machine gives, which drifts over a run, so the
                # enqueues being compared are measured seconds apart, not minutes.
                for r in turn:
                    if r.measures_enqueue:
                        log(f"run {run + 1}/{runs}: {r.key}: enqueue {jobs}")
                        report["systems"][r.key]["runs"]["enqueue"].append(_retried(r.enqueue, cfg, log, report))
                for r in turn:
                    entry = report["systems"][r.key]["runs"]
                    log(f"run {run + 1}/{runs}: {r.key}: drain {jobs}")
                    entry["drain"].append(_retried(r.drain, cfg, log, report))
                    log(f"    {entry['drain'][-1]:,.0f} jobs/s")
        finally:
            for r in runners:
                try:
                    r.close()
                except Exception as error:  # keep closing the others
                    log(f"closing {r.key}: {error}")
    report["load_average_end"] = os.getloadavg()
    for entry in report["systems"].values():
        entry["median"] = {k: statistics.median(v) for k, v in entry["runs"].items() if v}
    return report


def _retried(measurement: Any, cfg: Any, log: Any, report: dict[str, Any]) -> float:
    """Run a measurement; if it fails (the machine is shared: a server may be restarted under
    us), wait for the servers and try once more. Retries are counted in the report."""
    from .peer_procs import wait_for_servers

    try:
        return float(measurement())
    except Exception as error:
        log(f"    failed: {str(error).splitlines()[0][:200]}; retrying once")
        report["retries"] = report.get("retries", 0) + 1
        wait_for_servers(cfg)
        return float(measurement())


# -- the table ---------------------------------------------------------------------------


def _name(entry: dict[str, Any], versions_: dict[str, Any]) -> str:
    system = entry["system"]
    name = f"{system} {versions_.get(system, '')}".strip()
    return f"{name}, `{entry['variant']}`" if entry["variant"] else name


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def _storage(entry: dict[str, Any]) -> str:
    """The storage and the durability of a commit: SQLite's `PRAGMA synchronous`, and
    PostgreSQL's `synchronous_commit` where a row turns it off."""
    if entry["storage"] == "postgres" and "synchronous_commit=off" in entry["variant"]:
        return f"{STORAGE['postgres']}, synchronous_commit=off (in the URL's libpq options)"
    if entry["storage"] != "sqlite":
        return STORAGE[entry["storage"]]
    if entry["system"] == "activejob":
        level = "FULL" if "sqlite_synchronous=FULL" in entry["variant"] else "NORMAL"
    else:
        level = "NORMAL" if "NORMAL" in entry["variant"] else "FULL (huey's default)"
    return f"{STORAGE['sqlite']}, synchronous={level}"


# (label, activejob's key without the storage, the peer's keys per storage, metric)
_OURS = (("drain, `def perform`", "activejob_def_perform", "drain"),
         ("drain, `async def perform`", "activejob_async_def_perform", "drain"),
         ("enqueue", "activejob_def_perform", "enqueue"))
# huey, synchronous=NORMAL is compared in _SAME_DURABILITY.
_PEERS = (("huey (default)", {"sqlite": "huey_sqlite", "postgres": "huey_postgres"}, _OURS),
          ("procrastinate", {"postgres": "procrastinate_postgres"}, _OURS),
          ("rq (Redis)", {"sqlite": "rq_redis", "postgres": "rq_redis"}, _OURS),
          ("rq (Redis, forking Worker)", {"sqlite": "rq_Worker_redis", "postgres": "rq_Worker_redis"}, _OURS))
# On SQLite, like for like: both sides commit with the same `synchronous` (full keys: a ÷ b).
_SAME_DURABILITY = (
    ("drain, `def perform`: activejob FULL ÷ huey default (FULL)", "activejob_def_perform_full_sqlite", "huey_sqlite",
     "drain"),
    ("enqueue: activejob FULL ÷ huey default (FULL)", "activejob_def_perform_full_sqlite", "huey_sqlite", "enqueue"),
    ("drain, `def perform`: activejob NORMAL ÷ huey NORMAL", "activejob_def_perform_sqlite", "huey_normal_sqlite",
     "drain"),
    ("drain, `async def perform`: activejob NORMAL ÷ huey NORMAL", "activejob_async_def_perform_sqlite",
     "huey_normal_sqlite", "drain"),
    ("enqueue: activejob NORMAL ÷ huey NORMAL", "activejob_def_perform_sqlite", "huey_normal_sqlite", "enqueue"),
    ("drain, `def perform`: activejob FULL ÷ activejob NORMAL", "activejob_def_perform_full_sqlite",
     "activejob_def_perform_sqlite", "drain"),
    ("enqueue: activejob FULL ÷ activejob NORMAL", "activejob_def_perform_full_sqlite", "activejob_def_perform_sqlite",
     "enqueue"),
    ("drain: huey FULL ÷ huey NORMAL", "huey_sqlite", "huey_normal_sqlite", "drain"),
    ("enqueue: huey FULL ÷ huey NORMAL", "huey_sqlite", "huey_normal_sqlite", "enqueue"),
)
# On PostgreSQL, activejob with commits that do not wait for their WAL flush (the user's choice).
_OFF = "activejob_def_perform_commit_off_postgres"
_COMMIT_OFF = (
    ("drain, `def perform`: activejob synchronous_commit=off ÷ huey default", _OFF, "huey_postgres", "drain"),
    ("enqueue: activejob synchronous_commit=off ÷ huey default", _OFF, "huey_postgres", "enqueue"),
    ("drain, `def perform`: activejob off ÷ activejob on (the default)", _OFF, "activejob_def_perform_postgres",
     "drain"),
    ("enqueue: activejob off ÷ activejob on (the default)", _OFF, "activejob_def_perform_postgres", "enqueue"),
)


def table(report: dict[str, Any]) -> str:
    systems, v = report["systems"], report["versions"]
    lines = ["| queue | storage | worker | drain, jobs/s | enqueue, one per call, jobs/s |",
             "| --- | --- | --- | ---: | ---: |"]
    for entry in systems.values():
        m = entry.get("median", {})
        procs = entry.get("processes", 1)
        worker = f"`{entry['worker']}`" + (f" ({procs} processes)" if procs > 1 else "")
        cells = "skipped¹ | skipped¹" if entry.get("skipped") else f"{_f(m.get('drain'))} | {_f(m.get('enqueue'))}"
        lines.append(f"| {_name(entry, v)} | {_storage(entry)} | {worker} | {cells} |")

    def get(key: str, metric: str) -> float | None:
        return systems.get(key, {}).get("median", {}).get(metric)

    lines += ["", "| activejob ÷ peer | on SQLite | on PostgreSQL |", "| --- | ---: | ---: |"]
    for peer, keys, ours in _PEERS:
        if not any(k in systems for k in keys.values()):
            continue
        for label, mine, metric in ours:
            cells = [_ratio(get(f"{mine}_{db}", metric), get(keys[db], metric)) if db in keys else "-"
                     for db in ("sqlite", "postgres")]
            lines.append(f"| {label} ÷ {peer} | " + " | ".join(cells) + " |")
    for title, pairs in (("SQLite, the same durability on both sides", _SAME_DURABILITY),
                         ("PostgreSQL, commits that do not wait for their flush", _COMMIT_OFF)):
        rows = []
        for label, a, b, metric in pairs:
            if a not in systems or b not in systems:
                continue
            skipped = systems[a].get("skipped") or systems[b].get("skipped")
            rows.append(f"| {label} | {'skipped¹' if skipped else _ratio(get(a, metric), get(b, metric))} |")
        if rows:
            lines += ["", f"| {title} | ratio |", "| --- | ---: |", *rows]
    notes = [f"{_name(e, v)}: {e['skipped']}" for e in systems.values() if e.get("skipped")]
    if notes:
        lines += ["", "¹ not measured: " + "; ".join(notes)]
    return "\n".join(lines)


def about(report: dict[str, Any]) -> str:
    v, s = report["versions"], report["settings"]
    peers = ", ".join(f"{p} {v[p]}" for p in PEER_PACKAGES if p in v)
    retries = f" {report['retries']} measurement(s) failed once and were retried." if report.get("retries") else ""
    if "load_average_start" in report:
        retries = (f" Load average {report['load_average_start'][0]:.1f} at the start, "
                   f"{report['load_average_end'][0]:.1f} at the end.") + retries
    commit = v.get("git", "?") + (" (with uncommitted changes in activejob/)" if v.get("activejob_tree_dirty") else "")
    return (f"Medians of {s['runs']} run(s) of {s['jobs']:,} jobs each, {report['when']}, commit {commit}: "
            f"{v['cpus']} CPUs, {v['platform']}; Python {v['python']}, psycopg {v.get('psycopg', '-')}, "
            f"SQLite {v['sqlite']}; {peers}. Concurrency 4 everywhere; servers, benchmark and workers share "
            f"the machine. Ratios are of the medians; above 1, activejob is faster.{retries}")


def render_docs(report: dict[str, Any]) -> None:
    path = ROOT / "docs" / "benchmark.md"
    text = path.read_text()
    if START not in text:
        return
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    path.write_text(f"{head}{START}\n{about(report)}\n\n{report['table']}\n{END}{tail}")


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM ends the benchmark through its finally blocks, so its workers are ended too; a
    second SIGTERM must not interrupt that clean-up."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(143)


PEER_MODULES = ("huey", "procrastinate", "rq", "redis")


def missing_peers() -> list[str]:
    """The peers' packages this environment lacks (they come with the `bench` extra)."""
    def lacks(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):  # (ValueError: blocked in sys.modules)
            return True
    return [name for name in PEER_MODULES if lacks(name)]


def main(args: argparse.Namespace) -> int:
    out: Path = args.out or RESULTS / "peers.json"
    if args.render:
        report = json.loads(out.read_text())
    elif missing := missing_peers():
        # Said before anything runs, rather than a traceback half-way through the run.
        print(f"python -m bench --peers runs the peers' own packages, missing here: {', '.join(missing)}; "
              "pip install -e '.[bench]'", file=sys.stderr)
        return 2
    else:
        sys.path.insert(0, str(ROOT))
        signal.signal(signal.SIGTERM, _terminate)

        def log(message: str) -> None:
            print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

        report = measure(args, log)
    report["table"] = table(report)
    if not args.render:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(about(report) + "\n\n" + report["table"])
    if args.docs:
        render_docs(report)
    return 0
