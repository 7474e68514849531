"""Prometheus metrics (the `metrics` extra: `pip install 'activejob[metrics]'`).

Served as `GET /metrics` by the dashboard (`activejob.web.create_app`) and by
`activejob worker --metrics-port 9100`, in the Prometheus text format:

| metric | type | labels | what |
| --- | --- | --- | --- |
| `activejob_jobs` | gauge | `queue`, `status` | jobs in the database |
| `activejob_oldest_pending_age_seconds` | gauge | `queue` | how long the longest-waiting due job has waited |
| `activejob_queue_paused` | gauge | `queue` | 1 while the queue is paused |
| `activejob_workers_alive` | gauge | | workers with a recent heartbeat, anywhere |
| `activejob_jobs_started_total` | counter | `job_name` | attempts started |
| `activejob_jobs_completed_total` | counter | `job_name` | jobs completed |
| `activejob_jobs_failed_total` | counter | `job_name` | jobs failed for good |
| `activejob_jobs_retried_total` | counter | `job_name` | failed attempts to be run again (and jobs of lost workers) |
| `activejob_job_duration_seconds` | histogram | `job_name` | attempts, from start to completed, failed or retrying |

The gauges are read from the database at each scrape (through `JobQueue`), so every
exporter shows the same values. The counters and the histogram count what happened since
the exporter started: a worker's (`WorkerMetrics`) the attempts it ran, from its signals;
the dashboard's (`DashboardMetrics`) every worker's, from the durable event log its
`EventRelay` follows. Each exporter keeps its own `CollectorRegistry`, never
prometheus_client's global one:

    metrics = WorkerMetrics(queue)                   # count this process's worker
    metrics.serve(9100)                              # http://127.0.0.1:9100/metrics
    text = metrics.exposition()                      # or read the text yourself
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import signals
from .records import EventRecord

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .queue import JobQueue
    from .relay import EventRelay, Subscription

__all__ = ["DURATION_BUCKETS", "DashboardMetrics", "JobCounters", "QueueCollector", "WorkerMetrics"]

DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                    3600.0, float("inf"))
"""Seconds: jobs run from milliseconds to hours, beyond prometheus_client's default 10 s."""

_ENDS = frozenset({"completed", "failed", "retrying", "cancelled", "requeued", "waiting", "deleted"})
"""Events that end an attempt (if one was under way)."""

_STARTS_KEPT = 100_000  # attempts whose start is remembered (the oldest are forgotten first)


class QueueCollector(Collector):
    """The gauges, read from the database through `queue` at each scrape.

        registry.register(QueueCollector(queue))

    `stats`: where the counts come from (default `queue.stats`); the dashboard passes the
    counts its pages share, so a scrape on a big table reuses the viewers' recent count
    instead of counting again (`web/shared_reads.py`).
    """

    def __init__(self, queue: JobQueue, stats: Callable[[], dict[str, Any]] | None = None) -> None:
        self.queue = queue
        self._stats = stats or queue.stats

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database; the names are never shared

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        ages = self.queue.oldest_pending_age()
        workers = self.queue.workers()
        paused = set(stats.get("paused_queues", ()))
        by_queue: dict[str, dict[str, int]] = stats["by_queue"]
        queues = sorted(set(by_queue) | set(ages) | paused)

        jobs = GaugeMetricFamily("activejob_jobs", "Jobs in the database, by queue and status.",
                                 labels=["queue", "status"])
        for queue in queues:
            for status, count in sorted(by_queue.get(queue, {}).items()):
                jobs.add_metric([queue, status], count)
        oldest = GaugeMetricFamily(
            "activejob_oldest_pending_age_seconds",
            "Seconds the longest-waiting due pending job of the queue has waited since its run time (0: none).",
            labels=["queue"])
        held = GaugeMetricFamily("activejob_queue_paused", "1 while the queue is paused, else 0.", labels=["queue"])
        for queue in queues:
            oldest.add_metric([queue], ages.get(queue, 0.0))
            held.add_metric([queue], 1.0 if queue in paused else 0.0)
        alive = GaugeMetricFamily("activejob_workers_alive", "Workers with a recent heartbeat, in any process.",
                                  value=len(workers))
        yield from (jobs, oldest, held, alive)


class JobCounters:
    """The counters and the duration histogram per job type, in `registry`, fed one event
    at a time (from signals in a worker, from the event log in the dashboard).

        counters = JobCounters(CollectorRegistry())
        counters.count("started", job_id=1, name="send_email", at=t0)
        counters.count("completed", job_id=1, name="send_email", at=t1)   # observes t1 - t0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["job_name"]
        self.started = Counter("activejob_jobs_started", "Attempts started.", labels, registry=registry)
        self.completed = Counter("activejob_jobs_completed", "Jobs completed.", labels, registry=registry)
        self.failed = Counter("activejob_jobs_failed", "Jobs failed for good.", labels, registry=registry)
        self.retried = Counter("activejob_jobs_retried",
                               "Failed attempts the job will be run again after (and jobs of lost workers).",
                               labels, registry=registry)
        self.duration = Histogram("activejob_job_duration_seconds",
                                  "Attempts, from start to completed, failed or retrying.", labels,
                                  buckets=DURATION_BUCKETS, registry=registry)
        self._starts: OrderedDict[int, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def count(self, event: str, *, job_id: int | None, name: str, at: datetime, reason: Any = None) -> None:
        """Count one event of the log (`started`, `completed`, `failed`, `retrying`, ...);
        other types only end what a started attempt began. `reason="worker_lost"`: the
        attempt's worker died, so its length is not the job's (not observed)."""
        if job_id is None:
            return
        if event == "started":
            self.started.labels(name).inc()
            with self._lock:
                self._starts[job_id] = at
                self._starts.move_to_end(job_id)
                if len(self._starts) > _STARTS_KEPT:
                    self._starts.popitem(last=False)
            return
        if event not in _ENDS:
            return  # progress, logs: the attempt goes on
        with self._lock:
            began = self._starts.pop(job_id, None)
        counter = {"completed": self.completed, "failed": self.failed, "retrying": self.retried}.get(event)
        if counter is None:
            return
        counter.labels(name).inc()
        if began is not None and reason != "worker_lost":
            self.duration.labels(name).observe(max((at - began).total_seconds(), 0.0))

    def count_record(self, record: EventRecord) -> None:
        """Count one stored event."""
        self.count(record.type, job_id=record.job_id, name=record.name, at=record.created_at,
                   reason=record.data.get("reason"))

    def started_here(self, job_id: int) -> bool:
        """Whether an attempt of `job_id` was counted as started, and has not ended."""
        with self._lock:
            return job_id in self._starts


class _Exporter:
    """A registry of its own, and the text format of what it holds."""

    def __init__(self, queue: JobQueue, *, gauges: bool = True,
                 stats: Callable[[], dict[str, Any]] | None = None) -> None:
        self.queue = queue
        self.registry = CollectorRegistry(auto_describe=False)
        if gauges:
            self.registry.register(QueueCollector(queue, stats))
        self.counters = JobCounters(self.registry)

    def exposition(self) -> bytes:
        """Everything in this exporter's registry, in the Prometheus text format."""
        return generate_latest(self.registry)

    content_type = CONTENT_TYPE_LATEST


class WorkerMetrics(_Exporter):
    """A worker's metrics: the database gauges, and counters of the attempts that this
    process's worker of `queue` runs, counted from its signals until `close()`.

        metrics = WorkerMetrics(queue)
        server = metrics.serve(9100, host="127.0.0.1")     # what `--metrics-port 9100` does
        queue.work()
    """

    def __init__(self, queue: JobQueue, *, gauges: bool = True) -> None:
        super().__init__(queue, gauges=gauges)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._worker_id: str | None = None
        signals.job_status_changed.connect(self._on_event, weak=False)

    def _on_event(self, _sender: Any, **event: Any) -> None:
        job_id = event.get("job_id")
        if job_id is None:
            return
        kind = event.get("event", "")
        # Signals are the whole process's: a relay here also sends other workers' events.
        # Count the attempts this queue's worker starts, and how those end.
        if kind == "started" and not self._ours(event.get("worker_id")):
            return
        if kind != "started" and not self.counters.started_here(job_id):
            return
        self.counters.count(kind, job_id=job_id, name=str(event.get("name")), at=event["at"],
                            reason=event.get("reason"))

    def _ours(self, worker_id: Any) -> bool:
        if worker_id is None or worker_id != self._worker_id:
            # A new run of the worker has a new id (status() is too slow to ask every time).
            self._worker_id = self.queue.status()["worker_id"]
        return worker_id is not None and worker_id == self._worker_id

    def serve(self, port: int, host: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
        """Serve `/metrics` (any path, as prometheus_client does) on `host:port` from a daemon
        thread; returns prometheus_client's (server, thread). Port 0 picks a free one:
        `server.server_port` says which."""
        from prometheus_client import start_http_server

        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return self._server, self._thread

    def close(self) -> None:
        """Stop counting, and stop the server `serve` started."""
        signals.job_status_changed.disconnect(self._on_event)
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


class DashboardMetrics(_Exporter):
    """The dashboard's `/metrics`: the database gauges, and counters of every worker's
    attempts, counted from the events `relay` follows, from `start()` on.
    `create_app` makes one and starts it with the app (or at the first scrape).

        metrics = DashboardMetrics(queue, relay)
        await metrics.start()
        text = metrics.exposition()
    """

    def __init__(self, queue: JobQueue, relay: EventRelay, *,
                 stats: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__(queue, stats=stats)
        self.relay = relay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Count from now on (idempotent), in this event loop."""
        if self._task is not None and not self._task.done():
            return
        # Subscribed before returning, so no event after this call is missed.
        subscription = self.relay.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._follow(subscription),
                                                             name="activejob-metrics")

    async def _follow(self, subscription: Subscription) -> None:
        async with subscription:
            async for item in subscription:
                self.counters.count_record(item.record)

    def lifespan(self, inner: Callable[[Any], AbstractAsyncContextManager[None]]
                 ) -> Callable[[Any], AbstractAsyncContextManager[None]]:
        """An ASGI lifespan that runs `inner` and counts while it runs."""
        @contextlib.asynccontextmanager
        async def counting(app: Any) -> AsyncIterator[None]:
            async with inner(app):
                await self.start()
                try:
                    yield
                finally:
                    await self.aclose()

        return counting

    async def aclose(self) -> None:
        """Stop counting."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics`."""
        import anyio
        from starlette.responses import Response

        await self.relay.ensure_running()  # mounted where lifespans do not run: from the first scrape
        await self.start()
        body = await anyio.to_thread.run_sync(self.exposition)
        return Response(body, media_type=self.content_type)
