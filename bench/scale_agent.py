"""The processes of `python -m bench --scale` besides the worker, one role each:

    python -m bench.scale_agent probe  --database-url URL --out FILE [--interval 0.01] [--lease 3600]
    python -m bench.scale_agent stream --database-url URL --out FILE [--rate 1000]
    python -m bench.scale_agent prune  --database-url URL --out FILE

- probe: every `--interval` s, enqueues 4 `bench_probe` jobs (a job type no worker knows) and
  times `Store(url).claim(worker_id=..., names=["bench_probe"], queues=None, limit=4, now=...,
  lease=...)`, the claim a worker makes, from outside the worker; one line per claim.
- stream: enqueues `bench_noop_sync` jobs at `--rate` jobs/s (a `perform_all_later` every
  0.1 s) for the worker to drain, timing each call.
- prune: `JobQueue(url).prune()` with activejob's default retention (7 days), timed, as
  `activejob prune` runs it, and each of its transactions; `--pause-ms` runs the same
  batches with a pause between them instead (an experiment, see `prune()`).

Each writes JSON lines to `--out` (flushed at least every second, so a killed agent leaves
what it measured) and stops at SIGTERM (or `--deadline` seconds, a safety bound).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from activejob import BaseJob, NoArgs, job

PROBE_JOB = "bench_probe"


@job(PROBE_JOB, schema=NoArgs, max_retries=0)
class ProbeNoop(BaseJob[NoArgs]):
    """Only ever claimed by the probe (the worker does not import this module)."""

    def perform(self, args: NoArgs) -> None:
        return None


class Lines:
    def __init__(self, out: TextIO) -> None:
        self.out, self.flushed = out, time.monotonic()

    def write(self, **record: Any) -> None:
        self.out.write(json.dumps(record) + "\n")
        if time.monotonic() - self.flushed > 1:
            self.out.flush()
            self.flushed = time.monotonic()


def _stopper(deadline: float) -> Any:
    state = {"stop": False}

    def stop(signum: int, frame: Any) -> None:
        state["stop"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    end = time.monotonic() + deadline
    return lambda: state["stop"] or time.monotonic() > end


def probe(args: argparse.Namespace, lines: Lines) -> None:
    import activejob
    from activejob.store import Store

    activejob.configure(args.database_url, auto_migrate=False, watch=False)
    store = Store(args.database_url)
    stopped = _stopper(args.deadline)
    items = [{}] * args.limit
    next_at = time.monotonic()
    lines.write(kind="start", t=time.time())
    while not stopped():
        e0 = time.perf_counter()
        ProbeNoop.perform_all_later(items)
        enqueue_ms = (time.perf_counter() - e0) * 1000
        at = time.time()
        c0 = time.perf_counter()
        claimed, _ = store.claim(worker_id="bench-probe", names=[PROBE_JOB], queues=None, limit=args.limit,
                                 now=datetime.now(UTC), lease=args.lease)
        claim_ms = (time.perf_counter() - c0) * 1000
        lines.write(kind="claim", t=at, ms=claim_ms, n=len(claimed), enqueue_ms=enqueue_ms)
        next_at += args.interval
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - args.interval)  # after a stall, no burst to catch up
    store.dispose()


def stream(args: argparse.Namespace, lines: Lines) -> None:
    import activejob

    from .jobs import SyncNoop

    activejob.configure(args.database_url, auto_migrate=False, watch=False)
    stopped = _stopper(args.deadline)
    every = 0.1
    items = [{}] * max(1, round(args.rate * every))
    next_at = time.monotonic()
    while not stopped():
        at = time.time()
        t0 = time.perf_counter()
        SyncNoop.perform_all_later(items)
        lines.write(kind="enqueue", t=at, ms=(time.perf_counter() - t0) * 1000, n=len(items))
        next_at += every
        time.sleep(max(0.0, next_at - time.monotonic()))


def prune(args: argparse.Namespace, lines: Lines) -> None:
    """`JobQueue.prune()` as is; each of its write transactions is timed (how long it holds
    the write lock, on SQLite) by wrapping the store's `write()` on this instance. With
    `--pause-ms`, an experiment instead: the same batches (the SQL of activejob's
    `Store.prune`, redone here) with a pause between them, to see what yielding the lock does."""
    from contextlib import contextmanager

    from activejob import JobQueue

    queue = JobQueue(args.database_url, auto_migrate=False)
    store = queue.store  # connect before the clock starts
    held: list[float] = []
    original = store.write

    @contextmanager
    def timed_write(conn: Any = None) -> Any:
        t0 = time.perf_counter()
        with original(conn) as c:
            yield c
        held.append((time.perf_counter() - t0) * 1000)

    store.write = timed_write  # type: ignore[method-assign]
    start = time.time()
    lines.write(kind="prune_start", t=start)
    lines.out.flush()
    pruned = _paced_prune(queue, args.batch, args.pause_ms / 1000) if args.pause_ms > 0 else queue.prune()
    end = time.time()
    lines.write(kind="prune_end", t=end, seconds=end - start, pruned=pruned, transactions=len(held),
                held_ms=sorted(held)[len(held) // 2] if held else None, held_ms_max=max(held, default=None),
                pause_ms=args.pause_ms, batch=args.batch if args.pause_ms > 0 else 1000)
    queue.close()


def _paced_prune(queue: Any, batch: int, pause: float) -> int:
    from sqlalchemy import delete, select

    from activejob.store.base import events, jobs

    store, now = queue.store, datetime.now(UTC)
    total = 0
    for status, keep in queue.settings.retention.items():
        while True:
            with store.write() as c:
                ids = c.execute(select(jobs.c.id).where(jobs.c.status == status, jobs.c.finished_at < now - keep)
                                .limit(batch)).scalars().all()
                if ids:
                    c.execute(delete(events).where(events.c.job_id.in_(ids)))
                    c.execute(delete(jobs).where(jobs.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < batch:
                break
            time.sleep(pause)
    store.prune_events(now - queue.settings.event_retention)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_agent")
    parser.add_argument("role", choices=["probe", "stream", "prune"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.01, help="probe: seconds between claims")
    parser.add_argument("--limit", type=int, default=4, help="probe: jobs per claim")
    parser.add_argument("--lease", type=float, default=3600.0,
                        help="probe: lease of its claims (long, so no worker recovers the probe's jobs mid-run)")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream: jobs per second")
    parser.add_argument("--deadline", type=float, default=1800.0, help="stop after this many seconds regardless")
    parser.add_argument("--pause-ms", type=float, default=0.0,
                        help="prune: the experiment, a pause between batches (0: JobQueue.prune() as is)")
    parser.add_argument("--batch", type=int, default=1000, help="prune: jobs per batch in the experiment")
    args = parser.parse_args(argv)
    with open(args.out, "a") as out:
        lines = Lines(out)
        {"probe": probe, "stream": stream, "prune": prune}[args.role](args, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
