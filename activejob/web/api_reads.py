"""The REST API's reads (GET): jobs, a job's events and explanation, the event log, stats,
workers, schedules, job types and the last hour's activity (api.py lists the endpoints).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response

from ..errors import JobNotFound
from ..records import EventRecord, JobInfo
from ..relay import RelayedEvent, resume_cursor
from . import core
from .api_base import api, path_job_id, shown, visible
from .core import JobFilters, dashboard
from .jsonio import JSONResponse
from .openapi import JOB_ID, STATUS_ENUM, doc, param
from .security import Scope, viewer


@doc("List jobs", response="JobList", parameters=[
    param("status", {"type": "array", "items": STATUS_ENUM},
          "Only jobs in these statuses (repeat, or comma-separate)."),
    param("name", {"type": "string"}, "Only this job type."),
    param("queue", {"type": "string"}, "Only this queue."),
    param("owner", {"type": "string"}, "Only jobs of this owner."),
    param("parent_id", {"type": "integer"}, "Only children of this job."),
    param("parent", {"type": "integer"}, "The same as parent_id."),
    param("q", {"type": "string", "maxLength": 200}, "Text search in the job type, arguments and error."),
    param("search", {"type": "string", "maxLength": 200}, "The same as q."),
    param("order", {"type": "string", "enum": list(core.ORDERS)}, "newest (default) or oldest first."),
    param("limit", {"type": "integer", "minimum": 1, "maximum": core.MAX_LIMIT}, "Page size (default 50)."),
    param("offset", {"type": "integer", "minimum": 0}, "Jobs to skip."),
])
@api
async def list_jobs(request: Request) -> Response:
    """Jobs, newest first, filtered and paginated. `has_more` tells whether another page follows."""
    dash = dashboard(request)
    filters = JobFilters.parse(request.query_params)
    scope = viewer(request)
    if scope is None:
        jobs, more = await anyio.to_thread.run_sync(core.list_jobs, dash.queue, filters)
    else:
        jobs, more = await anyio.to_thread.run_sync(_scoped_jobs, dash.queue, filters, scope)
    return JSONResponse({
        "jobs": [shown(request, j) for j in jobs], "limit": filters.limit, "offset": filters.offset,
        "has_more": more, "next_offset": filters.offset + filters.limit if more else None,
    })


def _scoped_jobs(queue: Any, f: JobFilters, scope: Scope) -> tuple[list[JobInfo], bool]:
    """A viewer's page of jobs: its owner's (the `owner` filter cannot widen that) and its
    job ids, with the same filters."""
    if f.owner is not None and scope.owner is not None and f.owner != scope.owner and not scope.job_ids:
        return [], False
    if not scope.job_ids:  # the usual case: one owner's jobs, paged by the database
        return core.list_jobs(queue, dataclasses.replace(f, owner=scope.owner))
    found: dict[int, JobInfo] = {}
    owner_more = False
    if scope.owner is not None and f.owner in (None, scope.owner):
        window = JobFilters(status=f.status, name=f.name, queue=f.queue, owner=scope.owner, parent_id=f.parent_id,
                            search=f.search, limit=f.offset + f.limit, offset=0, order=f.order)
        jobs, owner_more = core.list_jobs(queue, window)
        found.update((j.id, j) for j in jobs)
    for job_id in sorted(scope.job_ids)[:core.MAX_LIMIT * 5]:
        if job_id in found:
            continue
        job = queue.get_job(job_id)
        if job is not None and _matches(job, f):
            found[job.id] = job
    ordered = sorted(found.values(), key=lambda j: (j.created_at, j.id), reverse=f.order == "newest")
    page = ordered[f.offset:f.offset + f.limit + 1]
    return page[:f.limit], len(page) > f.limit or owner_more


def _matches(job: JobInfo, f: JobFilters) -> bool:
    """The list filters, applied to one job in Python (a viewer's job ids)."""
    if f.status and job.status not in f.status:
        return False
    if (f.name and job.name != f.name) or (f.queue and job.queue != f.queue) or (f.owner and job.owner != f.owner):
        return False
    if f.parent_id is not None and job.parent_id != f.parent_id:
        return False
    if f.search:
        needle = f.search.lower()
        haystack = " ".join(str(x) for x in (job.name, job.args, job.error or "")).lower()
        if needle not in haystack:
            return False
    return True


@doc("One job, with its events and children", response="JobDetail", parameters=[JOB_ID], errors=(404,))
@api
async def get_job(request: Request) -> Response:
    """The job's stored fields, its type's label, phases and resource link, the actions
    allowed now, its event timeline (oldest first) and its children."""
    dash = dashboard(request)
    job_id = path_job_id(request)

    scope = viewer(request)

    def read() -> dict[str, Any]:
        job = visible(request, core.require_job(dash.queue, job_id))
        events = dash.relay.events(job_id=job_id, limit=1000)
        children = dash.queue.list_jobs(parent_id=job_id, limit=200, order="oldest")
        if scope is not None:
            children = [c for c in children if scope.allows(c.id, c.owner)]
        return {"job": shown(request, job), "events": [RelayedEvent(e, e.id).to_dict() for e in events],
                "children": [shown(request, c) for c in children]}

    return JSONResponse(await anyio.to_thread.run_sync(read))


@doc("Events of one job", response="EventList", parameters=[
    JOB_ID, param("after", {"type": "integer", "minimum": 0}, "Only events after this id."),
], errors=(404,))
@api
async def job_events(request: Request) -> Response:
    """The job's events after `after`, oldest first."""
    dash = dashboard(request)
    job_id = path_job_id(request)
    after = core.int_param(request.query_params.get("after"), "after", default=0) or 0
    job = await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id)
    visible(request, job)
    return await event_page(request, after=after, job_id=job_id, owner=None, limit=1000)


@doc("Why a job is, or is not, running", response="Explanation", parameters=[JOB_ID], errors=(404,))
@api
async def explain(request: Request) -> Response:
    """A `reason` code (finished, running, scheduled, retry_backoff, queue_paused,
    concurrency_limit, rate_limited, waiting_for_children, waiting_for_dependencies, no_worker,
    ready), a `message` for people that says what to do, and the facts in `details`."""
    dash = dashboard(request)
    job_id = path_job_id(request)

    def read() -> dict[str, Any]:
        visible(request, core.require_job(dash.queue, job_id))
        return dict(dash.queue.explain(job_id).to_dict())

    return JSONResponse(await anyio.to_thread.run_sync(read))


@doc("The event log (polling fallback of the WebSocket)", response="EventList", parameters=[
    param("after", {"type": "integer", "minimum": 0}, "Only events after this id (the last `cursor` you got)."),
    param("job_id", {"type": "integer"}, "Only this job's events."),
    param("batch_id", {"type": "integer"}, "Only this batch's own events and its members' events."),
    param("owner", {"type": "string"}, "Only events of this owner's jobs."),
    param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "At most this many (default 500)."),
])
@api
async def events(request: Request) -> Response:
    """Events after `after`, oldest first. Pass the returned `cursor` as the next `after`:
    an event may come twice (skip it by id), none is skipped."""
    params = request.query_params
    return await event_page(
        request,
        after=core.int_param(params.get("after"), "after", default=0) or 0,
        job_id=core.int_param(params.get("job_id"), "job_id", lo=1),
        owner=core.text_param(params.get("owner"), "owner"),
        limit=core.int_param(params.get("limit"), "limit", default=500, lo=1, hi=1000) or 500,
        batch_id=core.int_param(params.get("batch_id"), "batch_id", lo=1),
    )


async def event_page(request: Request, *, after: int, job_id: int | None, owner: str | None, limit: int,
                  batch_id: int | None = None) -> Response:
    dash = dashboard(request)
    relay = dash.relay
    settled = relay.settled  # before the read (see resume_cursor)
    scope = viewer(request)
    if scope is not None and job_id is not None and job_id not in scope.job_ids:
        job = await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id)
        visible(request, job)
    if scope is not None and job_id is None and batch_id is not None:
        batch = await anyio.to_thread.run_sync(dash.queue.get_batch, batch_id)
        if batch is None or not scope.allows_batch(batch.owner):
            raise JobNotFound(f"no batch with id {batch_id}")
    if scope is not None and job_id is None and batch_id is None:
        found = await anyio.to_thread.run_sync(
            lambda: _scoped_events(relay, scope, after=after, owner=owner, limit=limit))
    else:
        found = await anyio.to_thread.run_sync(
            lambda: relay.events(after=after, job_id=job_id, owner=owner, batch_id=batch_id, limit=limit))
    out = [RelayedEvent(e, resume_cursor(e.id, after=after, settled=settled)).to_dict() for e in found]
    return JSONResponse({"events": out, "cursor": out[-1]["cursor"] if out else after,
                         "has_more": len(found) == limit})


def _scoped_events(relay: Any, scope: Scope, *, after: int, owner: str | None, limit: int) -> list[EventRecord]:
    """A viewer's events: those of its owner's jobs and of its job ids, oldest first."""
    found: dict[int, EventRecord] = {}
    if scope.owner is not None and owner in (None, scope.owner):
        found.update((e.id, e) for e in relay.events(after=after, owner=scope.owner, limit=limit))
    for job_id in sorted(scope.job_ids)[:100]:
        found.update((e.id, e) for e in relay.events(after=after, job_id=job_id, limit=limit)
                     if owner is None or e.owner == owner)
    return [found[i] for i in sorted(found)][:limit]


@doc("Counts per status, job type and queue", response="Stats")
@api
async def stats(request: Request) -> Response:
    """Counts per status (plus `scheduled`, `total`), `by_name` and `by_queue` (per status),
    `unknown_job_types`: due jobs of types no live worker knows, and `paused_queues`."""
    dash = dashboard(request)
    return JSONResponse(await anyio.to_thread.run_sync(dash.stats))


@doc("Live workers", response="WorkerList")
@api
async def workers(request: Request) -> Response:
    """Workers with a recent heartbeat, in any process or machine."""
    dash = dashboard(request)
    found = await anyio.to_thread.run_sync(dash.queue.workers)
    return JSONResponse({"workers": [w.to_dict() for w in found]})


@doc("Cron schedules", response="ScheduleList")
@api
async def schedules(request: Request) -> Response:
    """The cron schedules the dashboard's queue keeps: registered in code in its process
    (`activejob dashboard --import ...`) or declared in its `recurring` setting, each with its
    next run, the last slot enqueued and that slot's job; `error` says why one cannot run."""
    dash = dashboard(request)
    return JSONResponse({"schedules": await anyio.to_thread.run_sync(dash.queue.recurring)})


@doc("Registered job types", response="JobTypeList")
@api
async def job_types(request: Request) -> Response:
    """Job types registered in the dashboard's process (`activejob dashboard --import ...`):
    label, description, expected phases, queue, priority, retries, timeout, argument schema."""
    dash = dashboard(request)
    return JSONResponse({"job_types": dash.queue.job_types()})


@doc("The last hour, minute by minute", response="Activity")
@api
async def activity(request: Request) -> Response:
    """From the event log: jobs finished per minute by status, and each queue's depth and
    oldest pending age at the end of each minute (the dashboard's charts; `JobQueue.activity`)."""
    return JSONResponse(await dashboard(request).activity())
