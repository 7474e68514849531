"""The dashboard's HTML pages: jobs, one job, queues. Server-rendered (Jinja2, every value
escaped); `?fragment=1` returns only the live part, which the page's script swaps in when
events arrive."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from .. import __version__
from ..definition import registry
from ..queue_reads import queue_rows
from ..records import STATUSES, EventRecord, JobInfo
from . import core
from .core import BadRequest, JobFilters, dashboard
from .jsonio import JSONResponse
from .security import base_path, csrf_token, is_api, security_headers, set_csrf_cookie

TEMPLATES = Path(__file__).parent / "templates"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
templates = Jinja2Templates(env=_env)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def fmt_time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "—"


def iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def stale(job: JobInfo) -> bool:
    """A pending job has not started its current attempt: any progress stored is the
    previous attempt's (the store keeps it on retry and requeue), so none is shown."""
    return job.status == "pending"


def percent(job: JobInfo) -> float | None:
    if stale(job):
        return None
    if job.progress is not None:
        return max(0.0, min(100.0, job.progress * 100))
    if job.progress_total:
        return max(0.0, min(100.0, 100.0 * (job.progress_current or 0) / job.progress_total))
    if job.status == "completed":
        return 100.0
    return None


def count_text(job: JobInfo) -> str:
    if job.progress_total is not None and not stale(job):
        return f"{job.progress_current or 0:,} of {job.progress_total:,}"
    return ""


_env.filters.update(duration=fmt_duration, time=fmt_time, iso=iso, pretty_json=core.pretty_json,
                    current_args=core.current_args)
def progress_message(job: JobInfo) -> str:
    return "" if stale(job) else job.progress_message or ""


def progress_phase(job: JobInfo) -> str:
    return "" if stale(job) else job.progress_phase or ""


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


_env.globals.update(percent=percent, count_text=count_text, progress_message=progress_message,
                    progress_phase=progress_phase, type_info=core.type_info, statuses=STATUSES,
                    version=__version__)


def event_time(event: EventRecord) -> tuple[str, datetime] | None:
    """The time an entry's detail ends with ("next attempt at", a time), shown by the
    template as a <time> like every other time of the dashboard."""
    when = parse_time(event.data.get("run_at")) if event.data.get("run_at") else None
    if when is None or event.type not in ("enqueued", "retrying"):
        return None
    return ("scheduled for" if event.type == "enqueued" else "next attempt"), when


def describe(event: EventRecord) -> tuple[str, str]:
    """A timeline entry: a title and a detail line (plain text; the template escapes it).
    A run_at goes separately (`event_time`)."""
    d = event.data
    kind = event.type
    if kind == "enqueued":
        detail = []
        if d.get("reason"):
            detail.append(str(d["reason"]))
        if d.get("run_at") and event_time(event) is None:
            detail.append(f"scheduled for {d['run_at']}")
        return "Enqueued", "; ".join(detail)
    if kind == "started":
        return f"Attempt {event.attempt} started", f"on worker {d['worker_id']}" if d.get("worker_id") else ""
    if kind == "log":
        extra = ", ".join(f"{k}={v}" for k, v in d.items() if k not in ("message", "at"))
        return str(d.get("message", "log")), extra
    if kind == "retrying":
        when = f"; next attempt at {d['run_at']}" if d.get("run_at") and event_time(event) is None else ""
        return f"Attempt {event.attempt} failed", f"{d.get('error', '')}{when}"
    if kind == "completed":
        return "Completed", ""
    if kind == "failed":
        return "Failed", str(d.get("error", ""))
    if kind == "cancelled":
        return "Cancelled", str(d.get("reason", ""))
    if kind == "requeued":
        return "Put back in the queue", str(d.get("reason", ""))
    if kind == "replaced":  # unique_mode replace or debounce: a duplicate's args and run time
        moved = f"; runs at {d['run_at']}" if "run_at" in d.get("changed", ()) else ""
        changed = ", ".join(d.get("changed", ()))
        return f"Replaced by a duplicate ({d.get('mode', 'replace')})", f"changed {changed}{moved}"
    if kind == "deleted":
        return "Deleted", ""
    return kind.capitalize(), ""


def timeline(events: list[EventRecord]) -> list[dict[str, Any]]:
    """Every event but progress, which shows only when its phase changes. Internal events
    never get here: `relay.events` leaves them out."""
    out = []
    phase: str | None = None
    for e in sorted(events, key=lambda e: (e.created_at, e.id)):
        if e.type == "progress":
            new_phase = e.data.get("phase")
            if not new_phase or new_phase == phase:
                continue
            phase = new_phase
            title, detail = f"Phase: {new_phase}", str(e.data.get("message") or "")
        else:
            title, detail = describe(e)
        when = event_time(e)
        out.append({"id": e.id, "type": e.type, "title": title, "detail": detail, "at": e.created_at,
                    "attempt": e.attempt, "when_label": when[0] if when else "", "when": when[1] if when else None})
    return out


async def _render(request: Request, name: str, context: dict[str, Any], *, status_code: int = 200) -> Response:
    dash = dashboard(request)
    token, new = csrf_token(request)
    base = base_path(request.scope)
    context = {
        "request": request, "base": base, "static": f"{base}/static", "csrf": token, "title": dash.title,
        "poll_interval": dash.poll_interval, "qs": urlencode,
        "labels": {n: core.type_info(n)["label"] for n in registry}, **context,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if new:
        set_csrf_cookie(response, request, token)
    response.headers["Cache-Control"] = "no-store"
    return security_headers(response)


def filtered_counts(dash: core.Dashboard, f: JobFilters) -> dict[str, int]:
    """Jobs per status among those the list's search and filters (all but status) match:
    the numbers on the status tabs."""
    found = dash.counts(f)
    counts = {status: found.get(status, 0) for status in STATUSES}
    counts["total"] = sum(counts.values())
    return counts


async def jobs_page(request: Request) -> Response:
    dash = dashboard(request)
    error = None
    try:
        filters = JobFilters.parse(request.query_params)
    except BadRequest as bad:
        error, filters = str(bad), JobFilters()
    cursor = await dash.cursor()  # before reading: whatever happens after is replayed live

    def read() -> tuple[list[JobInfo], bool, dict[str, Any], dict[str, int]]:
        jobs, more = core.list_jobs(dash.queue, filters)
        stats = dash.stats()
        counts = filtered_counts(dash, filters) if filters.active else {
            s: stats[s] for s in (*STATUSES, "total")}
        return jobs, more, stats, counts

    jobs, more, stats, counts = await anyio.to_thread.run_sync(read)
    names = sorted(set(stats["by_name"]) | set(registry))
    queues = sorted(set(stats["by_queue"]) | {registry[n].options.queue for n in registry})
    context = {"page": "jobs", "jobs": jobs, "more": more, "stats": stats, "filters": filters, "names": names,
               "counts": counts, "queues": queues, "error": error, "cursor": cursor}
    fragment = request.query_params.get("fragment")
    return await _render(request, "_jobs_live.html" if fragment else "jobs.html", context,
                         status_code=400 if error else 200)


async def job_page(request: Request) -> Response:
    dash = dashboard(request)
    job_id: int = request.path_params["job_id"]
    cursor = await dash.cursor()

    def read() -> dict[str, Any] | None:
        job = dash.queue.get_job(job_id)
        if job is None:
            return None
        events = dash.relay.events(job_id=job_id, limit=2000)
        children = dash.queue.list_jobs(parent_id=job_id, limit=200, order="oldest")
        parent = dash.queue.get_job(job.parent_id) if job.parent_id is not None else None
        why = _why(dash.queue, job_id)
        return {"job": job, "events": timeline(events), "children": children, "parent": parent, "why": why,
                "info": core.type_info(job.name), "link": core.resource_link(job), "actions": core.actions(job)}

    found = await anyio.to_thread.run_sync(read)
    if found is None:
        raise HTTPException(404, f"There is no job #{job_id} (it may have been deleted).")
    context = {"page": "job", "cursor": cursor, **found}
    return await _render(request, "_job_body.html" if request.query_params.get("fragment") else "job.html", context)


def _why(queue: Any, job_id: int) -> Any:
    """The job page's "why is it not running" line (None if the job was deleted meanwhile)."""
    from ..errors import JobNotFound

    try:
        return queue.explain(job_id)
    except JobNotFound:
        return None


async def queues_page(request: Request) -> Response:
    dash = dashboard(request)
    cursor = await dash.cursor()
    stats = await anyio.to_thread.run_sync(dash.stats)
    workers = await anyio.to_thread.run_sync(dash.queue.workers)
    types = [core.type_info(n) | {"name": n} for n in sorted(set(stats["by_name"]) | set(registry))]
    context = {"page": "queues", "stats": stats, "queues": queue_rows(stats), "workers": workers,
               "types": types, "cursor": cursor}
    return await _render(request, "_queues_live.html" if request.query_params.get("fragment") else "queues.html",
                         context)


async def schedules_page(request: Request) -> Response:
    dash = dashboard(request)
    found = await anyio.to_thread.run_sync(dash.queue.recurring)
    shown = [{**s, "next_run": parse_time(s["next_run"]), "last_enqueued": parse_time(s["last_enqueued"])}
             for s in found]  # datetimes, as the `when` macro shows them
    return await _render(request, "schedules.html", {"page": "schedules", "schedules": shown,
                                                     "cursor": await dash.cursor()})


async def not_found(request: Request, exc: Exception) -> Response:
    detail = getattr(exc, "detail", "Not found")
    if is_api(request.scope):
        return JSONResponse({"error": detail}, status_code=404)
    return await _render(request, "error.html", {"page": "", "message": detail, "cursor": 0}, status_code=404)


async def http_error(request: Request, exc: Exception) -> Response:
    """Any other HTTP error Starlette raises (405 for a method a route does not take): JSON
    under /api/, with its headers (Allow); plain text, as Starlette's own, for the pages."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    if not is_api(request.scope):
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=headers)
    detail = exc.detail
    if exc.status_code == 405 and "Allow" in headers:
        # Starlette lists the methods in a set's order, which differs from run to run.
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
        detail = f"method {request.method} is not allowed here; this path takes {headers['Allow']}"
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=headers)


def server_error(request: Request, exc: Exception) -> Response:
    """A crash (500): `{"error": ...}` under /api/, Starlette's plain text for the pages. The
    exception is still raised on to the server, which logs it."""
    if is_api(request.scope):
        return JSONResponse({"error": "internal server error"}, status_code=500)
    return PlainTextResponse("Internal Server Error", status_code=500)
