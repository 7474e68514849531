"""Why isn't my job running? A pure decision from what the database and this process know.

`queue.explain(job_id)` reads the facts in one go (`Store.explain_facts`) and hands them to
`decide`, with the job type's options from this process's registry. The answer is an
`Explanation`: a `reason` code for programs and a `message` for people that names the job, its
queue, the times involved, and what to do.

The first rule that matches wins, in this order:

| reason | when |
| --- | --- |
| `finished` | it completed, failed or was cancelled |
| `running` | a worker runs it now |
| `waiting_for_dependencies` | it waits for jobs given as `depends_on` |
| `waiting_for_children` | it waits for its children (`wait_for_children()`) |
| `retry_backoff` | an attempt failed; the retry is due later |
| `scheduled` | its run time is in the future |
| `queue_paused` | its queue is paused |
| `no_worker` | no live worker knows its type and serves its queue |
| `concurrency_limit` | its type (or concurrency key) has as many jobs running as it allows |
| `rate_limited` | its type, rate key or queue has started as many jobs as its window allows |
| `ready` | it is due and a worker claims it next (after the due jobs ahead of it) |

    >>> from datetime import timedelta
    >>> facts = _example(run_at_in=timedelta(minutes=5))
    >>> why = decide(facts)
    >>> why.reason
    'scheduled'
    >>> why.message
    'Job #7 (send_email) is scheduled for 2030-01-01 12:05:00 UTC, in 5 minutes; a worker takes it then.'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import rate_limits as rate_limit_forms
from .definition import JobOptions, registry
from .liveness import live_since
from .records import JobInfo, WorkerInfo
from .store.explain import Blocker, ExplainFacts, KeyLimits, RateUse

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store

REASONS = ("finished", "running", "waiting_for_dependencies", "waiting_for_children", "retry_backoff",
           "scheduled", "queue_paused", "no_worker", "concurrency_limit", "rate_limited", "ready")
"""Every reason code, in the order the rules are checked."""


@dataclass(frozen=True)
class Explanation:
    """Why a job is, or is not, running: a `reason` code (one of `REASONS`), a `message` for
    people, and the facts behind it in `details` (JSON-ready).

        why = queue.explain(handle.id)
        if why.reason == "queue_paused":
            print(why.message)   # ... resume it with `activejob resume mail`
    """

    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "details": self.details}


def explain_job(store: Store, settings: Settings, job_id: int, now: datetime) -> Explanation:
    """Read the facts about `job_id` and decide (what `JobQueue.explain` does). JobNotFound
    for an unknown id."""
    def limits(job: JobInfo, live: Sequence[WorkerInfo]) -> KeyLimits:
        # A queue's limits as this process's settings and the live workers keep them: where
        # they differ, the most lenient decides whether some worker may start the job.
        kept = queue_rate_limits(settings, live)
        return rate_limits_for(job, _options(job.name), {queue: found[-1] for queue, found in kept.items()})

    facts = store.explain_facts(job_id, now, live_since=live_since(now, settings.lease), rate_limits=limits)
    return decide(facts, _options(facts.job.name))


def queue_rate_limits(settings: Settings, live: Iterable[WorkerInfo]) -> dict[str, list[tuple[int, timedelta]]]:
    """Each limited queue's limits, strictest first: this process's `queue_rate_limits`
    setting and those the `live` workers registered (what `JobQueue.queue_rate_limits` shows)."""
    return rate_limit_forms.by_queue(settings.queue_rate_limits, *(w.queue_rate_limits for w in live))


def rate_limits_for(job: JobInfo, options: JobOptions | None,
                    queue_limits: Mapping[str, tuple[int, timedelta]]) -> dict[str, tuple[int, timedelta]]:
    """The rate-limit keys a job's starts count under, and their limits: its type's (per rate
    key, with `rate_limit_key`) and its queue's.

    >>> job = _example().job
    >>> rate_limits_for(job, None, {"mail": (100, timedelta(minutes=1))})
    {'queue:mail': (100, datetime.timedelta(seconds=60))}
    """
    found: dict[str, tuple[int, timedelta]] = {}
    if options is not None and options.rate_limit is not None:
        keyed = job.rate_key if options.rate_limit_key is not None else None
        found[rate_limit_forms.type_key(job.name, keyed)] = options.rate_limit
    if job.queue in queue_limits:
        found[rate_limit_forms.queue_key(job.queue)] = queue_limits[job.queue]
    return found


def _options(name: str) -> JobOptions | None:
    cls = registry.get(name)
    return cls.options if cls is not None else None


def decide(facts: ExplainFacts, options: JobOptions | None = None) -> Explanation:
    """The explanation for `facts`; `options` are the job type's, when this process has
    registered it (without them its concurrency limit is not checked, and `details` says so).
    The first rule that matches wins (see the table above).
    """
    job, now = facts.job, facts.now
    who = f"Job #{job.id} ({job.name})"

    def say(reason: str, message: str, **details: Any) -> Explanation:
        return _said(facts, reason, message, **details)

    if job.status in ("completed", "failed", "cancelled"):
        return _finished(facts, who)
    if job.status == "running":
        return _running(facts, who)
    if job.status == "waiting":
        return _waiting(facts, who)
    if job.run_at > now:
        when = f"{_at(job.run_at)}, in {human(job.run_at - now)}"
        if job.attempts > 0:
            error = f" ({_short(job.error)})" if job.error else ""
            return say("retry_backoff", f"{who} failed attempt {job.attempts} of {job.max_retries + 1}{error}; "
                       f"it is retried at {when}.", run_at=job.run_at.isoformat(), attempts=job.attempts,
                       max_retries=job.max_retries, error=job.error)
        return say("scheduled", f"{who} is scheduled for {when}; a worker takes it then.",
                   run_at=job.run_at.isoformat())
    if facts.paused_since is not None:
        return say("queue_paused", f"{who} is due, but its queue {job.queue} has been paused since "
                   f"{_at(facts.paused_since)}; resume it with `activejob resume {job.queue}`.",
                   paused_since=facts.paused_since.isoformat())
    able = [w for w in facts.workers if job.name in w.job_types and _serves(w, job.queue)]
    if not able:
        return _no_worker(facts, who)
    workers = {"workers": [w.id for w in able]}
    if options is not None and options.concurrency_limit is not None:
        per_key = options.concurrency_key is not None
        running = facts.running_of_key if per_key else facts.running_of_type
        if running >= options.concurrency_limit:
            of = f"with concurrency key {job.concurrency_key!r} " if per_key else ""
            return say("concurrency_limit", f"{who} is due, but {running} job(s) of {job.name} {of}are running, "
                       f"its concurrency limit of {options.concurrency_limit}; it starts when one of them finishes.",
                       running=running, concurrency_limit=options.concurrency_limit,
                       concurrency_key=job.concurrency_key if per_key else None, **workers)
    full = [r for r in facts.rates if r.full]
    if full:
        return _rate_limited(facts, full, who, workers)
    limits_checked = options is not None
    ahead = (f"{facts.ahead} due job(s) of queue {job.queue} are ahead of it" if facts.ahead
             else f"it is next in queue {job.queue}")
    unchecked = "" if limits_checked else (
        f" (its type is not registered in this process, so its concurrency and rate limits were not checked: "
        f"import the module that defines {job.name})")
    return say("ready", f"{who} is due and will be claimed next by one of {len(able)} live worker(s) that can "
               f"run it: {ahead}.{unchecked}", ahead=facts.ahead, limits_checked=limits_checked, **workers)


def _said(facts: ExplainFacts, reason: str, message: str, **details: Any) -> Explanation:
    job = facts.job
    return Explanation(reason, message, {"job_id": job.id, "name": job.name, "queue": job.queue,
                                         "status": job.status, "now": facts.now.isoformat(), **details})


def _finished(facts: ExplainFacts, who: str) -> Explanation:
    job = facts.job
    at = f" at {_at(job.finished_at)}" if job.finished_at else ""
    after = dict(finished_at=job.finished_at.isoformat() if job.finished_at else None)
    if job.status == "completed":
        return _said(facts, "finished", f"{who} completed{at}; there is nothing left to run.", **after)
    if job.status == "failed":
        error = f": {_short(job.error)}" if job.error else ""
        return _said(facts, "finished", f"{who} failed{at} after {job.attempts} attempt(s){error}. Run it again with "
                   f"`activejob retry {job.id}`.", error=job.error, **after)
    return _said(facts, "finished", f"{who} was cancelled{at}. Run it again with `activejob retry {job.id}`.",
               error=job.error, **after)


def _running(facts: ExplainFacts, who: str) -> Explanation:
    job, now = facts.job, facts.now
    started = f", started {human(now - job.started_at)} ago" if job.started_at else ""
    text = (f"{who} is running on worker {job.worker_id}{started} (attempt {job.attempts} of "
            f"{job.max_retries + 1}).")
    if job.cancel_requested:
        text += " Cancellation was requested: it stops as soon as its worker hears."
    expired = job.lease_expires_at is not None and job.lease_expires_at < now
    if expired and job.lease_expires_at is not None:
        text += (f" Its lease expired {human(now - job.lease_expires_at)} ago: its worker may have died, and a live "
                 f"worker's maintenance will put it back to pending.")
    return _said(facts, "running", text, worker_id=job.worker_id,
               started_at=job.started_at.isoformat() if job.started_at else None,
               lease_expires_at=job.lease_expires_at.isoformat() if job.lease_expires_at else None,
               lease_expired=expired, cancel_requested=job.cancel_requested)


def _waiting(facts: ExplainFacts, who: str) -> Explanation:
    job = facts.job
    # A job that never ran waits for dependencies; a parent has run and waits for children.
    if facts.open_dependencies or (job.started_at is None and not facts.open_children):
        if not facts.open_dependencies:
            return _said(facts, "waiting_for_dependencies", f"{who} waits for its dependencies, which have all "
                         "ended: the next maintenance pass settles it.", open_dependencies=0, dependencies=[])
        holding = _blockers(facts.dependencies, facts.open_dependencies)
        return _said(facts, "waiting_for_dependencies", f"{who} waits for {holding} to complete.",
                     open_dependencies=facts.open_dependencies,
                     dependencies=[dataclasses.asdict(b) for b in facts.dependencies])
    if not facts.open_children:
        return _said(facts, "waiting_for_children", f"{who} waits for its children, which have all finished: "
                     "it runs again at the next maintenance pass.", open_children=0, children=[])
    holding = _blockers(facts.children, facts.open_children)
    return _said(facts, "waiting_for_children", f"{who} waits for {holding} of its children to finish.",
                 open_children=facts.open_children, children=[dataclasses.asdict(b) for b in facts.children])


def _no_worker(facts: ExplainFacts, who: str) -> Explanation:
    job = facts.job
    knowing = [w for w in facts.workers if job.name in w.job_types]
    if not facts.workers:
        text = (f"{who} is due, but no worker is running: start one with "
                f"`activejob worker --import <the module that defines {job.name}>`.")
    elif not knowing:
        text = (f"{who} is due, but none of the {len(facts.workers)} live worker(s) has registered the job type "
                f"{job.name}: start a worker that imports the module defining it (`--import`).")
    else:
        served = sorted({q for w in knowing for q in (w.queues or ())})
        text = (f"{who} is due, but the live worker(s) that know {job.name} take only the queue(s) "
                f"{', '.join(served)}, not {job.queue}: start one with `--queues {job.queue}`, or without --queues.")
    return _said(facts, "no_worker", text, live_workers=len(facts.workers),
                 workers_knowing_type=[w.id for w in knowing])


def _rate_limited(facts: ExplainFacts, full: list[RateUse], who: str, workers: dict[str, Any]) -> Explanation:
    now = facts.now
    # The limit that frees up last is what holds the job longest.
    worst = max(full, key=lambda r: r.frees_at or now)
    kind, _, subject = worst.key.partition(":")
    what = f"queue {subject}" if kind == "queue" else subject.replace(":", " with rate key ", 1)
    when = (f"; the next start is allowed at {_at(worst.frees_at)}, in {human(worst.frees_at - now)}"
            if worst.frees_at is not None else "")
    limit = rate_limit_forms.text((worst.limit, worst.window))
    return _said(facts, "rate_limited", f"{who} is due, but {what} has started {worst.starts} job(s) in the last "
               f"{human(worst.window)}, all its rate limit ({limit}) allows{when}.",
               rate_key=worst.key, starts=worst.starts, limit=worst.limit,
               window_seconds=worst.window.total_seconds(),
               allowed_at=worst.frees_at.isoformat() if worst.frees_at else None, **workers)


def _serves(worker: WorkerInfo, queue: str) -> bool:
    return worker.queues is None or queue in worker.queues


def _blockers(shown: tuple[Blocker, ...], count: int) -> str:
    """`job #5 (fetch, running)`, or `3 jobs: #5 (fetch, running), ...`."""
    named = ", ".join(f"#{b.id} ({b.name}, {b.status})" for b in shown)
    if count == 1:
        return f"job {named}"
    more = f" and {count - len(shown)} more" if count > len(shown) else ""
    return f"{count} jobs: {named}{more}"


def _short(error: str | None, most: int = 200) -> str:
    text = " ".join((error or "").split())
    return text if len(text) <= most else text[:most - 1] + "…"


def _at(moment: datetime) -> str:
    """An exact time, in UTC.

    >>> _at(datetime(2030, 1, 1, 12, 5, tzinfo=UTC))
    '2030-01-01 12:05:00 UTC'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def human(delta: timedelta) -> str:
    """A duration as people say it, rounded to its largest unit or two.

    >>> human(timedelta(seconds=1))
    '1 second'
    >>> human(timedelta(seconds=95))
    '1 minute 35 seconds'
    >>> human(timedelta(minutes=5))
    '5 minutes'
    >>> human(timedelta(hours=3, minutes=20, seconds=9))
    '3 hours 20 minutes'
    >>> human(timedelta(days=2, hours=5))
    '2 days 5 hours'
    """
    seconds = max(round(delta.total_seconds()), 0)
    if seconds == 0:
        return "less than a second" if delta > timedelta(0) else "0 seconds"
    parts: list[str] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            n, seconds = divmod(seconds, size)
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
        elif parts:
            break  # "2 days", not "2 days 0 hours 5 minutes"
        if len(parts) == 2:
            break
    return " ".join(parts[:2])


def _example(*, run_at_in: timedelta = timedelta(0), **changes: Any) -> ExplainFacts:
    """Facts about a pending job #7 of type send_email in queue mail, at 2030-01-01 12:00 UTC
    (for the examples in this module's docstrings)."""
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    job = JobInfo(
        id=7, name="send_email", queue="mail", priority=0, status="pending", args={}, result=None, error=None,
        traceback=None, attempts=0, max_retries=3, run_at=now + run_at_in, created_at=now, started_at=None,
        finished_at=None, worker_id=None, lease_expires_at=None, cancel_requested=False, progress=None,
        progress_message=None, progress_phase=None, progress_current=None, progress_total=None, checkpoint=None,
        parent_id=None, owner=None)
    return ExplainFacts(job=job, now=now, **changes)
