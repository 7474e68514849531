"""The REST API's changes (POST, CSRF-checked): cancel, retry or delete a job, pause or resume
a queue, run a cron schedule's job now, and the bulk actions (api.py lists the endpoints).

The API reads JSON bodies, and only the fields its OpenAPI description lists (any other is
a 400: `{"nmae": ...}` must not retry every failed job). A form is read as the pages' plain
HTML forms are, and answered with a redirect, as it always was; but a JSON text sent as a
form (curl's default `-d`) is a 415: read as a form, it would lose its fields,
`expected_status` first. The pages' forms post to their own routes outside /api
(`form_routes`), which read the same fields and answer the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..errors import ActiveJobError, UnknownScheduleError
from ..records import STATUSES
from . import core
from .api_base import Forbidden, accepted, api, path_job_id, shown, visible
from .core import BadRequest, Conflict, UnsupportedMediaType, dashboard, refuse_unknown
from .jsonio import JSONResponse, loads
from .openapi import CSRF_BODY, EXPECTED_BODY, FAILED_BODY, IDS_BODY, JOB_ID, QUEUE_NAME, SCHEDULE_KEY, Handler, doc
from .security import CSRF_FIELD, base_path, check_csrf, viewer

MAX_BODY = 10_000
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
FORM_KEY = "activejob.form"  # set by the pages' form routes: read a form, answer with a redirect


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def via_form(request: Request) -> bool:
    """Whether this change came through one of the pages' form routes (not the API)."""
    return bool(request.scope.get(FORM_KEY))


async def _submitted(request: Request) -> dict[str, Any]:
    """The body: a JSON object on the API, a form on the pages' form routes; {} when empty."""
    kind = _content_type(request)
    if via_form(request):
        if kind in FORM_TYPES:
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}
        if not (await request.body()).strip():
            return {}
        raise UnsupportedMediaType(f"this route takes the dashboard page's form ({FORM_TYPES[0]}); "
                                   "send JSON to the same path under /api instead")
    raw = await request.body()
    if not raw.strip():
        return {}
    if kind in FORM_TYPES and not raw.lstrip().startswith((b"{", b"[")):
        form = await request.form()
        request.scope[FORM_KEY] = True  # answered as a page's form is: a redirect
        return {k: v for k, v in form.items() if isinstance(v, str)}
    if kind != "application/json":
        hint = "; curl -d sends a form: add -H 'Content-Type: application/json'" if kind in FORM_TYPES else ""
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: application/json "
                                   f"(it came as {kind or 'no content type'}{hint})")
    if len(raw) > MAX_BODY:
        raise BadRequest("body too large")
    try:
        data = loads(raw)
    except ValueError as error:
        raise BadRequest(f"the body must be JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


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


async def proven(request: Request) -> tuple[dict[str, Any], bool]:
    """The body of a state-changing call, holding only the fields its endpoint's description
    lists, after its CSRF proof is checked; and whether it came from a page's form."""
    body = await _submitted(request)
    refuse_unknown(body, accepted(request).body or (), "body field")
    check_csrf(request, body.get(CSRF_FIELD) if isinstance(body.get(CSRF_FIELD), str) else None,
               dashboard(request).allowed_origins)
    return body, via_form(request)


async def _change(request: Request, verb: Callable[[Any, int, str | None], Any], *, gone: bool = False) -> Response:
    dash = dashboard(request)
    body, from_form = await proven(request)
    job_id = path_job_id(request)
    scope = viewer(request)
    if scope is not None:  # the Guard lets a viewer through to cancel only, and only if its token allows
        if verb is not core.cancel_job or not scope.can_cancel:
            raise Forbidden("forbidden: this viewer token may not change jobs")
        visible(request, await anyio.to_thread.run_sync(core.require_job, dash.queue, job_id))
    expected = _expected_status(body)
    job = await anyio.to_thread.run_sync(verb, dash.queue, job_id, expected)
    if from_form:
        return _back(request, None if gone else job_id)
    if gone:
        return JSONResponse({"deleted": job_id})
    return JSONResponse({"job": shown(request, job)})


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
    _body, from_form = await proven(request)
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


@doc("Run a cron schedule's job now", response="JobResult", parameters=[SCHEDULE_KEY], body=CSRF_BODY,
     errors=(404, 409))
@api
async def run_schedule(request: Request) -> Response:
    """Enqueue the schedule's job now, with its arguments, queue and priority; its slots run
    as usual. 404: no schedule has the key; 409: it cannot run here (its job type is not
    imported by the dashboard, or its arguments fail the schema), or its job was refused (a
    unique key held, with unique_mode 'raise'). A page's form is answered with the new job's
    page."""
    if viewer(request) is not None:  # the Guard already refuses this path to a viewer
        raise Forbidden("forbidden: a viewer token may not run schedules")
    _body, from_form = await proven(request)
    dash = dashboard(request)
    try:
        handle = await anyio.to_thread.run_sync(dash.queue.run_schedule, request.path_params["key"])
    except UnknownScheduleError:
        raise  # a 404
    except ActiveJobError as error:  # it cannot run here, or its unique key is held ('raise'), or refused
        raise Conflict(str(error), None) from None
    if from_form:
        return RedirectResponse(f"{base_path(request.scope)}/jobs/{handle.id}", status_code=303)
    job = await anyio.to_thread.run_sync(core.require_job, dash.queue, handle.id)
    return JSONResponse({"job": shown(request, job)})


# -- bulk actions -----------------------------------------------------------------------

def _operator(request: Request) -> None:
    if viewer(request) is not None:  # the Guard already refuses these paths to a viewer
        raise Forbidden("forbidden: a viewer token may not change many jobs at once")


@doc("Retry every failed job (of a type, queue or search)", response="BulkResult", body=FAILED_BODY)
@api
async def retry_failed(request: Request) -> Response:
    """Every job that is failed when the UPDATE runs, and matches `name`, `queue`, `owner`
    and `q` as the job list does, runs again with fresh attempts. `retried`: how many."""
    _operator(request)
    body, _ = await proven(request)
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
    body, _ = await proven(request)
    ids = core.bulk_ids(body)
    count = await anyio.to_thread.run_sync(dashboard(request).queue.cancel_many, ids)
    return JSONResponse({"cancelled": count, "skipped": len(ids) - count})


@doc("Delete the finished jobs of a list", response="BulkResult", body=IDS_BODY)
@api
async def delete_many(request: Request) -> Response:
    """Completed, failed and cancelled jobs of `ids` are deleted with their events; others
    (pending, running, waiting, missing) are `skipped`."""
    _operator(request)
    body, _ = await proven(request)
    ids = core.bulk_ids(body)
    count = await anyio.to_thread.run_sync(dashboard(request).queue.delete_many, ids)
    return JSONResponse({"deleted": count, "skipped": len(ids) - count})


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


# -- the pages' forms ---------------------------------------------------------------------

def form(handler: Handler) -> Handler:
    """The pages' plain-HTML counterpart of an API change: the same endpoint, checks and
    fields, read from a form (with its `csrf_token`) and answered with a redirect."""
    async def endpoint(request: Request) -> Response:
        request.scope[FORM_KEY] = True
        return await handler(request)
    endpoint.__name__ = endpoint.__qualname__ = f"{handler.__name__}_form"
    return endpoint


def form_routes() -> list[BaseRoute]:
    """Where the job page's, the queues page's and the schedules page's forms post (the pages' script sends JSON
    to the API instead; these are for a browser without it)."""
    return [
        Route("/jobs/{job_id:int}/cancel", form(cancel), methods=["POST"]),
        Route("/jobs/{job_id:int}/retry", form(retry), methods=["POST"]),
        Route("/jobs/{job_id:int}/delete", form(delete), methods=["POST"]),
        Route("/queues/{name:path}/pause", form(pause_queue), methods=["POST"]),
        Route("/queues/{name:path}/resume", form(resume_queue), methods=["POST"]),
        Route("/schedules/{key:path}/run", form(run_schedule), methods=["POST"]),
    ]
