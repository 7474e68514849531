"""The example's web app: Starlette, with the job queue's worker running in its lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

import activejob
from activejob import Batch, EventRelay, JobArgumentsError, JobNotFound, JobQueue

from .jobs import KINDS, AlbumReady, MakeThumbnail

log = logging.getLogger("example_app")

PAGE = (Path(__file__).parent / "index.html").read_text()
DASHBOARD_PATH = "/jobs"


def database_url() -> str:
    """`ACTIVEJOB_DATABASE_URL`, else `example.db` in the working directory."""
    return os.environ.get("ACTIVEJOB_DATABASE_URL") or f"sqlite:///{Path.cwd() / 'example.db'}"


def dashboard(queue: JobQueue, relay: EventRelay) -> Any | None:
    """The activejob dashboard as an ASGI app, when `activejob.web` is importable."""
    try:
        from activejob.web import create_app as create_dashboard
    except ImportError as error:  # the web extra is not installed
        log.warning("dashboard not mounted: %s", error)
        return None
    return create_dashboard(queue, relay=relay, title="activejob example")


def create_app(database_url_: str | None = None, *, mount_dashboard: bool = True, run_worker: bool = True,
               **queue_options: Any) -> Starlette:
    """The app, with the process-wide queue configured on `database_url_` (default: `database_url()`).

    `queue_options` go to `activejob.configure` (concurrency, poll_interval, ...). With
    `run_worker=False` the app only enqueues and reads, and `activejob worker` processes run
    the jobs (`make example-pg`).
    """
    options: dict[str, Any] = {"concurrency": 8, "shutdown_grace": 3.0, **queue_options}
    queue = activejob.configure(database_url_ or database_url(), **options)

    # The relay follows the event log for the dashboard's live updates. A mounted app's
    # own lifespan does not run, so this app runs it (and the worker) in its lifespan.
    relay = EventRelay(queue)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if not run_worker:
            async with relay:
                yield
            return
        async with queue, relay:  # the worker runs in this event loop while the app serves
            yield

    async def index(_request: Request) -> Response:
        return HTMLResponse(PAGE.replace("{{dashboard}}", DASHBOARD_PATH + "/" if board is not None else ""))

    def list_jobs(_request: Request) -> Response:
        jobs = queue.list_jobs(limit=15)
        stats = queue.stats()
        return JSONResponse({
            "jobs": [j.to_dict() for j in jobs],
            "counts": {s: stats[s] for s in ("pending", "running", "completed", "failed", "cancelled")},
            "worker": {k: queue.status()[k] for k in ("state", "in_flight", "concurrency", "completed", "failed")},
            "workers": len(queue.workers()),  # live worker processes anywhere, this one's included
        })

    async def start_job(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        kind = body.get("kind", "")
        if kind not in KINDS:
            return JSONResponse({"error": f"unknown kind {kind!r}; use one of {sorted(KINDS)}"}, status_code=400)
        try:
            handle = await KINDS[kind].set(owner="demo").aperform_later(**body.get("args", {}))
        except JobArgumentsError as error:
            return JSONResponse({"error": str(error), "fields": error.fields}, status_code=422)
        return JSONResponse({"id": handle.id, "name": handle.name}, status_code=201)

    async def start_batch(request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        images = body.get("images", 5)
        if not isinstance(images, int) or isinstance(images, bool) or not 1 <= images <= 100:
            return JSONResponse({"error": f"images must be a whole number from 1 to 100, got {images!r}"},
                                status_code=400)
        # Every job enqueued inside the block joins the batch; AlbumReady runs once all have finished.
        async with Batch(on_complete=AlbumReady, description=f"album of {images} images", owner="demo") as batch:
            handles = await MakeThumbnail.set(owner="demo").aperform_all_later(
                [{"image": n} for n in range(1, images + 1)])
        return JSONResponse({"batch_id": batch.id, "jobs": [h.id for h in handles]}, status_code=201)

    def get_batch(request: Request) -> Response:
        info = queue.get_batch(int(request.path_params["batch_id"]))
        if info is None:
            return JSONResponse({"error": "no such batch"}, status_code=404)
        return JSONResponse({"id": info.id, "description": info.description, "total": info.total,
                             "completed": info.completed, "failed": info.failed, "finished": info.finished,
                             "progress": info.progress})

    def cancel_job(request: Request) -> Response:
        try:
            status = queue.cancel(int(request.path_params["job_id"]))
        except JobNotFound as error:
            return JSONResponse({"error": str(error)}, status_code=404)
        return JSONResponse({"status": status})

    def get_job(request: Request) -> Response:
        info = queue.get_job(int(request.path_params["job_id"]))
        if info is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(info.to_dict())

    board = dashboard(queue, relay) if mount_dashboard else None
    routes: list[Any] = [
        Route("/", index),
        Route("/api/jobs", list_jobs, methods=["GET"]),
        Route("/api/jobs", start_job, methods=["POST"]),
        Route("/api/jobs/{job_id:int}", get_job, methods=["GET"]),
        Route("/api/jobs/{job_id:int}/cancel", cancel_job, methods=["POST"]),
        Route("/api/batches", start_batch, methods=["POST"]),
        Route("/api/batches/{batch_id:int}", get_batch, methods=["GET"]),
    ]
    if board is not None:
        routes.append(Mount(DASHBOARD_PATH, app=board))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.queue = queue
    app.state.dashboard = board is not None
    return app
