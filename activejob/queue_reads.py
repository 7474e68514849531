"""`JobQueue`'s reads: jobs, events, workers, counts, schedules, activity, and why a job
is not running. They see every process's and machine's work: it is all in the database."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import clock, rate_limits
from .definition import registry
from .explain import Explanation, explain_job, queue_rate_limits
from .queue_base import QueueBase, an_id
from .records import STATUSES, EventRecord, JobInfo, WorkerInfo


class QueueReads(QueueBase):
    """Reading jobs, events, workers and counts."""

    def list_jobs(self, status: str | Sequence[str] | None = None, name: str | None = None,
                  queue: str | None = None, owner: str | None = None, limit: int = 50, offset: int = 0,
                  *, parent_id: int | None = None, search: str | None = None,
                  order: str = "newest") -> list[JobInfo]:
        """Jobs, newest first (`order="oldest"` for the other way), filtered by any of
        status, name, queue, owner, parent, text."""
        if order not in ("newest", "oldest"):
            raise ValueError(f"order is 'newest' or 'oldest', not {order!r}")
        wanted = [status] if isinstance(status, str) else list(status or ())
        unknown = [s for s in wanted if s not in STATUSES]
        if unknown:  # a typo would otherwise list nothing, as if there were no such jobs
            raise ValueError(f"status {', '.join(map(repr, unknown))} is not one of {', '.join(STATUSES)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number >= 1, got {limit!r}")
        return self.store.list_jobs(status=status, name=name, queue=queue, owner=owner, parent_id=parent_id,
                                    search=search, limit=limit, offset=offset, order=order)

    def count_by_status(self, *, name: str | None = None, queue: str | None = None, owner: str | None = None,
                        parent_id: int | None = None, search: str | None = None) -> dict[str, int]:
        """Jobs per status among those the filters match, as `list_jobs` filters them:

            queue.count_by_status(search="invoice")   # {"failed": 2, "completed": 40, ...}
        """
        return self.store.count_by_status(name=name, queue=queue, owner=owner, parent_id=parent_id, search=search)

    def stats(self) -> dict[str, Any]:
        """Counts per status (`stats()["pending"]`), plus `by_name`, `by_queue`, `scheduled`,
        `paused_queues`, `queue_rate_limits` (see `queue_rate_limits()`), and
        `unknown_job_types`: due jobs of types no live worker has registered."""
        now = clock.now()
        live = self.workers()
        out = self.store.stats(now)
        out["unknown_job_types"] = self.store.unclaimable(now, live)
        out["paused_queues"] = list(self.store.paused_queues())
        out["queue_rate_limits"] = self._queue_rate_limits(live)
        return out

    def queue_rate_limits(self) -> dict[str, list[str]]:
        """The rate limit of each limited queue, as the live workers keep it (any process or
        machine) and as this process's settings say, the strictest first:

            queue.queue_rate_limits()  # {"mail": ["10/s"]}

        Workers started with different limits each keep their own: then a queue shows several."""
        return self._queue_rate_limits(self.workers())

    def _queue_rate_limits(self, live: list[WorkerInfo]) -> dict[str, list[str]]:
        kept = queue_rate_limits(self.settings, live)
        return {queue: [rate_limits.text(limit) for limit in limits] for queue, limits in kept.items()}

    def oldest_pending_age(self) -> dict[str, float]:
        """Seconds the longest-waiting due job of each queue has waited since its run time
        (queues with nothing due are left out): the queue's latency.

            queue.oldest_pending_age()      # {"mail": 12.5}: mail is 12.5 s behind
        """
        now = clock.now()
        return {name: max((now - at).total_seconds(), 0.0) for name, at in self.store.oldest_due(now).items()}

    def available_job_types(self) -> list[str]:
        """Names of the job types registered in this process."""
        return list(registry)

    def recurring(self) -> list[dict[str, Any]]:
        """The cron schedules this queue keeps (registered in code, or declared in its
        `recurring` setting), sorted by key, each with its `next_run`, `last_enqueued` (the
        latest slot enqueued, from the database) and `error` (why a declared one cannot run):

            for s in queue.recurring():
                print(s["key"], s["job"], s["cron"], s["next_run"], s["last_enqueued"])
        """
        from .recurring import describe_all

        return describe_all(self.settings.recurring, registry, self.store.last_stamped_jobs, clock.now())

    def job_types(self) -> list[dict[str, Any]]:
        """Each registered job type's options (label, phases, queue, schema, ...)."""
        return [registry[name].options.describe() for name in registry]

    def events(self, job_id: int | None = None, *, after: int = 0, owner: str | None = None,
               limit: int = 500, batch_id: int | None = None) -> list[EventRecord]:
        """The durable event log, oldest first; `after` is the last event id already seen.

        `batch_id`: a batch's own events (`batch_failed`, `batch_finished`, `batch_cancelled`)
        and its members' events:

            for event in queue.events(batch_id=batch.id):
                print(event.type, event.job_id, event.status)
        """
        for field, value, least in (("after", after, 0), ("limit", limit, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{field} must be a whole number >= {least}, got {value!r}")
        return self.store.events(after=after, job_id=job_id, owner=owner, batch_id=batch_id, limit=limit)

    def workers(self) -> list[WorkerInfo]:
        """Workers with a recent heartbeat, in any process or machine."""
        return self.store.workers(since=self._live_since())

    def explain(self, job_id: int) -> Explanation:
        """Why the job is, or is not, running now: a `reason` code, a `message` for people,
        and the facts in `details` (docs/howto/why-not-running.md). JobNotFound for an unknown id.

            why = queue.explain(handle.id)
            why.reason      # "queue_paused"
            why.message     # "Job #12 (send_email) is due, but its queue mail has been paused since ..."
        """
        return explain_job(self.store, self.settings, an_id(job_id), clock.now())

    def activity(self, minutes: int = 60) -> dict[str, Any]:
        """Per-minute series of the last `minutes` minutes, from the event log: jobs finished
        by status, and each queue's depth and oldest pending age (`Store.activity` says how).

            queue.activity()["finished"]["failed"]          # failures in each minute
            queue.activity()["queues"]["mail"]["depth"]     # pending mail jobs at each minute's end
        """
        return self.store.activity(clock.now(), minutes)

    def paused_queues(self) -> list[str]:
        """The names of the paused queues."""
        return list(self.store.paused_queues())


def queue_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Per queue, from `stats()`: its `counts` per status, whether it is `paused`, and its
    `rate_limit` ("100/m"; several, comma-separated, where workers disagree; None). Every queue
    with jobs, and every paused or rate-limited one even without jobs (else it could not be
    resumed from a page, or its limit seen). The `activejob queues` command and the
    dashboard's Queues page show these rows."""
    by_queue: dict[str, dict[str, int]] = stats["by_queue"]
    paused = set(stats["paused_queues"])
    limits: dict[str, list[str]] = stats["queue_rate_limits"]
    return [{"name": name, "counts": by_queue.get(name, dict.fromkeys(STATUSES, 0)), "paused": name in paused,
             "rate_limit": ", ".join(limits[name]) if name in limits else None}
            for name in sorted(set(by_queue) | paused | set(limits))]
