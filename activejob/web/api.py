"""The REST API (JSON, under `/api`); its OpenAPI description is in openapi.py.

    GET  /api/jobs                   ?status=&name=&queue=&owner=&parent_id=&q=&order=&limit=&offset=
    GET  /api/jobs/{id}              the job, its events and its children
    GET  /api/jobs/{id}/events       ?after=
    GET  /api/jobs/{id}/explain      why it is, or is not, running: a reason code and a message
    POST /api/jobs/{id}/cancel       {"expected_status": "running"}
    POST /api/jobs/{id}/retry        {"expected_status": "failed"}
    POST /api/jobs/{id}/delete       {"expected_status": "completed"}
    POST /api/queues/{name}/pause    workers start none of the queue's jobs until it is resumed
    POST /api/queues/{name}/resume
    POST /api/jobs/retry-failed      {"name": ..., "queue": ..., "q": ...}: every failed job that matches
    POST /api/jobs/cancel            {"ids": [...]}: those pending, waiting or running
    POST /api/jobs/delete            {"ids": [...]}: those finished
    GET  /api/activity               the last hour per minute: finished by status, depth and oldest age per queue
    GET  /api/events                 ?after=&job_id=&owner=&limit=   (the polling fallback)
    GET  /api/stats                  counts per status, per job type and per queue; paused queues, queue rate limits
    GET  /api/workers                live workers and their last heartbeat
    GET  /api/job-types              registered job types (label, phases, schema, ...)
    GET  /api/schedules              cron schedules: next run, last slot enqueued, catch-up
    GET  /api/openapi.json           this, as OpenAPI 3.1
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import JobNotFound
from ..records import STATUSES, EventRecord, JobInfo
from ..relay import RelayedEvent, resume_cursor
from . import core
from .core import BadRequest, Conflict, JobFilters, dashboard
from .jsonio import JSONResponse, loads
from .openapi import (
    CSRF_BODY,
    EXPECTED_BODY,
    FAILED_BODY,
    IDS_BODY,
    JOB_ID,
    QUEUE_NAME,
    STATUS_ENUM,
    Handler,
    doc,
    param,
)
from .openapi import openapi_schema as openapi_schema
from .security import CSRF_FIELD, CSRFError, Scope, base_path, check_csrf, viewer


def api(fn: Handler) -> Handler:
    """JSON errors for the API: 400 bad input, 403 CSRF, 404 unknown job, 409 conflict."""
    @functools.wraps(fn)
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except BadRequest as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        except (CSRFError, Forbidden) as error:
            return JSONResponse({"error": str(error)}, status_code=403)
        except JobNotFound as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        except Conflict as error:
            job = core.job_json(error.job) if error.job is not None else None
            return JSONResponse({"error": str(error), "job": job}, status_code=409)
    return handler


def _job_id(request: Request) -> int:
    value: int = request.path_params["job_id"]
    return value


class Forbidden(Exception):
    """A viewer asked for a change its token does not allow; becomes HTTP 403."""


def _visible(request: Request, job: JobInfo) -> JobInfo:
    """The job, if this request may see it; else JobNotFound (a viewer learns nothing of
    other owners' jobs, not even that they exist)."""
    scope = viewer(request)
    if scope is not None and not scope.allows(job.id, job.owner):
        raise JobNotFound(f"no job with id {job.id}")
    return job


def _shown(request: Request, job: JobInfo) -> dict[str, Any]:
    """A job on the API; a viewer's `actions` are only those its token allows."""
    out = core.job_json(job)
    scope = viewer(request)
    if scope is not None:
        out["actions"] = [a for a in out["actions"] if a == "cancel" and scope.can_cancel]
    return out


# -- reads ------------------------------------------------------------------------------

@doc("List jobs", response="JobList", parameters=[
    param("status", {"type": "array", "items": STATUS_ENUM},
          "Only jobs in these statuses (repeat, or comma-separate)."),
    param("name", {"type": "string"}, "Only this job type."),
    param("queue", {"type": "string"}, "Only this queue."),
    param("owner", {"type": "string"}, "Only jobs of this owner."),
    param("parent_id", {"type": "integer"}, "Only children of this job."),
    param("q", {"type": "string", "maxLength": 200}, "Text search in the job type, arguments and error."),
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
        "jobs": [_shown(request, j) for j in jobs], "limit": filters.limit, "offset": filters.offset,
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
    job_id = _job_id(request)

    scope = viewer(request)

    def read() -> dict[str, Any]:
        job = _visible(request, core.require_job(dash.queue, job_id))
        events = dash.relay.events(job_id=job_id, limit=1000)
        children = dash.queue.list_jobs(parent_id=job_id, limit=200, order="oldest")
        if scope is not None:
            children = [c for c in children if scope.allows(c.id, c.owner)]
        return {"job": _shown(request, job), "events": [RelayedEvent(e, e.id).to_dict() for e in events],
                "children": [_shown(request, c) for c in children]}

    return JSONResponse(await anyio.to_thread.run_sync(read))


@doc("Events of one job", response="EventList", parameters=[
    JOB_ID, param("after", {"type": "integer", "minimum": 0}, "Only events after this id."),
], errors=(404,))
@api
async def job_events(request: Request) -> Response:
    """The job's events after `after`, oldest first."""
    dash = dashboard(request)
    job_id = _job_id(request)
    after = core.int_param(request.query_params.get("after"), "after", default=0) or 0
    job = await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id)
    _visible(request, job)
    return await _events(request, after=after, job_id=job_id, owner=None, limit=1000)


@doc("Why a job is, or is not, running", response="Explanation", parameters=[JOB_ID], errors=(404,))
@api
async def explain(request: Request) -> Response:
    """A `reason` code (finished, running, scheduled, retry_backoff, queue_paused,
    concurrency_limit, rate_limited, waiting_for_children, waiting_for_dependencies, no_worker,
    ready), a `message` for people that says what to do, and the facts in `details`."""
    dash = dashboard(request)
    job_id = _job_id(request)

    def read() -> dict[str, Any]:
        _visible(request, core.require_job(dash.queue, job_id))
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
    return await _events(
        request,
        after=core.int_param(params.get("after"), "after", default=0) or 0,
        job_id=core.int_param(params.get("job_id"), "job_id", lo=1),
        owner=core.text_param(params.get("owner"), "owner"),
        limit=core.int_param(params.get("limit"), "limit", default=500, lo=1, hi=1000) or 500,
        batch_id=core.int_param(params.get("batch_id"), "batch_id", lo=1),
    )


async def _events(request: Request, *, after: int, job_id: int | None, owner: str | None, limit: int,
                  batch_id: int | None = None) -> Response:
    dash = dashboard(request)
    relay = dash.relay
    settled = relay.settled  # before the read (see resume_cursor)
    scope = viewer(request)
    if scope is not None and job_id is not None and job_id not in scope.job_ids:
        job = await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id)
        _visible(request, job)
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
    return JSONResponse(await anyio.to_thread.run_sync(dash.queue.stats))


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


# -- changes ----------------------------------------------------------------------------

async def _submitted(request: Request) -> tuple[dict[str, Any], bool]:
    """The body (JSON or a form), and whether it came from a plain HTML form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}, True
    raw = await request.body()
    if not raw.strip():
        return {}, False
    if len(raw) > 10_000:
        raise BadRequest("body too large")
    try:
        data = loads(raw)
    except ValueError as error:
        raise BadRequest(f"the body must be JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data, False


def _expected_status(body: dict[str, Any]) -> str | None:
    value = body.get("expected_status")
    if value in (None, ""):
        return None
    if value not in STATUSES:
        raise BadRequest(f"expected_status must be one of {', '.join(STATUSES)}")
    return str(value)


def _back(request: Request, job_id: int | None) -> Response:
    base = base_path(request.scope)
    return RedirectResponse(f"{base}/jobs/{job_id}" if job_id is not None else f"{base}/", status_code=303)


async def _proven(request: Request) -> tuple[dict[str, Any], bool]:
    """The body of a state-changing call, after its CSRF proof is checked."""
    body, from_form = await _submitted(request)
    check_csrf(request, body.get(CSRF_FIELD) if isinstance(body.get(CSRF_FIELD), str) else None,
               dashboard(request).allowed_origins)
    return body, from_form


async def _change(request: Request, verb: Callable[[Any, int, str | None], Any], *, gone: bool = False) -> Response:
    dash = dashboard(request)
    body, from_form = await _proven(request)
    job_id = _job_id(request)
    scope = viewer(request)
    if scope is not None:  # the Guard lets a viewer through to cancel only, and only if its token allows
        if verb is not core.cancel_job or not scope.can_cancel:
            raise Forbidden("forbidden: this viewer token may not change jobs")
        _visible(request, await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id))
    expected = _expected_status(body)
    job = await anyio.to_thread.run_sync(verb, dash.queue, job_id, expected)
    if from_form:
        return _back(request, None if gone else job_id)
    if gone:
        return JSONResponse({"deleted": job_id})
    return JSONResponse({"job": _shown(request, job)})


@doc("Cancel a job", response="JobResult", parameters=[JOB_ID], body=EXPECTED_BODY, errors=(404, 409))
@api
async def cancel(request: Request) -> Response:
    """A pending or waiting job is cancelled at once; a running one as soon as its worker
    hears (within a heartbeat). With `expected_status`, only if the job is still in it."""
    return await _change(request, core.cancel_job)


@doc("Retry a failed or cancelled job", response="JobResult", parameters=[JOB_ID], body=EXPECTED_BODY,
     errors=(404, 409))
@api
async def retry(request: Request) -> Response:
    """Run a failed or cancelled job again with fresh attempts. With `expected_status`,
    only if it is still in that state: a second click never runs the job twice."""
    return await _change(request, core.retry_job)


@doc("Delete a job that is not running", parameters=[JOB_ID], body=EXPECTED_BODY, errors=(404, 409))
@api
async def delete(request: Request) -> Response:
    """Delete the job and its events (a `deleted` event stays in the log)."""
    return await _change(request, core.delete_job, gone=True)


async def _queue_change(request: Request, *, pause: bool) -> Response:
    dash = dashboard(request)
    if viewer(request) is not None:
        raise Forbidden("forbidden: a viewer token may not pause or resume queues")
    _body, from_form = await _proven(request)
    name: str = request.path_params["name"]
    verb = dash.queue.pause_queue if pause else dash.queue.resume_queue
    try:
        changed = await anyio.to_thread.run_sync(verb, name)
    except ValueError as error:  # a queue name the queue refuses is the client's mistake
        raise BadRequest(str(error)) from None
    if from_form:
        return RedirectResponse(f"{base_path(request.scope)}/queues", status_code=303)
    return JSONResponse({"queue": name, "paused": pause, "changed": changed})


@doc("Pause a queue", response="QueueState", parameters=[QUEUE_NAME], body=CSRF_BODY)
@api
async def pause_queue(request: Request) -> Response:
    """Workers, in every process, start none of the queue's jobs until it is resumed; jobs
    already running finish, and enqueueing goes on. `changed` is false if it was paused already."""
    return await _queue_change(request, pause=True)


@doc("Resume a paused queue", response="QueueState", parameters=[QUEUE_NAME], body=CSRF_BODY)
@api
async def resume_queue(request: Request) -> Response:
    """Workers take the queue's jobs again at once. `changed` is false if it was not paused."""
    return await _queue_change(request, pause=False)


# -- charts and bulk actions ------------------------------------------------------------

@doc("The last hour, minute by minute", response="Activity")
@api
async def activity(request: Request) -> Response:
    """From the event log: jobs finished per minute by status, and each queue's depth and
    oldest pending age at the end of each minute (the dashboard's charts; `JobQueue.activity`)."""
    return JSONResponse(await dashboard(request).activity())


def _operator(request: Request) -> None:
    if viewer(request) is not None:  # the Guard already refuses these paths to a viewer
        raise Forbidden("forbidden: a viewer token may not change many jobs at once")


@doc("Retry every failed job (of a type, queue or search)", response="BulkResult", body=FAILED_BODY)
@api
async def retry_failed(request: Request) -> Response:
    """Every job that is failed when the UPDATE runs, and matches `name`, `queue`, `owner`
    and `q` as the job list does, runs again with fresh attempts. `retried`: how many."""
    _operator(request)
    body, _ = await _proven(request)
    dash = dashboard(request)
    name = core.text_param(_text(body, "name"), "name")
    queue = core.text_param(_text(body, "queue"), "queue")
    owner = core.text_param(_text(body, "owner"), "owner")
    search = core.text_param(_text(body, "q") or _text(body, "search"), "q")
    count = await anyio.to_thread.run_sync(
        lambda: dash.queue.retry_failed(name, queue=queue, owner=owner, search=search))
    return JSONResponse({"retried": count})


@doc("Cancel the jobs of a list", response="BulkResult", body=IDS_BODY)
@api
async def cancel_many(request: Request) -> Response:
    """Pending and waiting jobs of `ids` are cancelled at once, running ones as soon as their
    workers hear; finished or missing ones are `skipped`."""
    _operator(request)
    body, _ = await _proven(request)
    ids = core.bulk_ids(body)
    count = await anyio.to_thread.run_sync(dashboard(request).queue.cancel_many, ids)
    return JSONResponse({"cancelled": count, "skipped": len(ids) - count})


@doc("Delete the finished jobs of a list", response="BulkResult", body=IDS_BODY)
@api
async def delete_many(request: Request) -> Response:
    """Completed, failed and cancelled jobs of `ids` are deleted with their events; others
    (pending, running, waiting, missing) are `skipped`."""
    _operator(request)
    body, _ = await _proven(request)
    ids = core.bulk_ids(body)
    count = await anyio.to_thread.run_sync(dashboard(request).queue.delete_many, ids)
    return JSONResponse({"deleted": count, "skipped": len(ids) - count})


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def routes() -> list[BaseRoute]:
    return [
        Route("/jobs", list_jobs, methods=["GET"]),
        Route("/jobs/retry-failed", retry_failed, methods=["POST"]),
        Route("/jobs/cancel", cancel_many, methods=["POST"]),
        Route("/jobs/delete", delete_many, methods=["POST"]),
        Route("/activity", activity, methods=["GET"]),
        Route("/jobs/{job_id:int}", get_job, methods=["GET"]),
        Route("/jobs/{job_id:int}/events", job_events, methods=["GET"]),
        Route("/jobs/{job_id:int}/explain", explain, methods=["GET"]),
        Route("/jobs/{job_id:int}/cancel", cancel, methods=["POST"]),
        Route("/jobs/{job_id:int}/retry", retry, methods=["POST"]),
        Route("/jobs/{job_id:int}/delete", delete, methods=["POST"]),
        # `path`: a queue name may hold a slash, which the default converter would not match.
        Route("/queues/{name:path}/pause", pause_queue, methods=["POST"]),
        Route("/queues/{name:path}/resume", resume_queue, methods=["POST"]),
        Route("/events", events, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/workers", workers, methods=["GET"]),
        Route("/job-types", job_types, methods=["GET"]),
        Route("/schedules", schedules, methods=["GET"]),
    ]
