"""`create_app`: the dashboard, REST and WebSocket API as one Starlette application."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..queue import JobQueue
from ..relay import EventRelay
from . import api, batches, pages, ws
from .core import Dashboard
from .hosts import HostCheck, normalize_patterns
from .jsonio import JSONResponse
from .security import Authorize, Guard

if TYPE_CHECKING:
    from ..metrics import DashboardMetrics

STATIC = Path(__file__).parent / "static"


def create_app(queue: JobQueue | None = None, *, database_url: str | None = None, token: str | None = None,
               authorize: Authorize | None = None, relay: EventRelay | None = None, title: str = "activejob",
               allowed_origins: Sequence[str] = (), allowed_hosts: Sequence[str] | None = None,
               poll_interval: float = 3.0, debug: bool = False, secret: str | None = None) -> Starlette:
    """The dashboard (HTML pages), the REST API under `/api` and the WebSocket `/api/ws`.

        from activejob.web import create_app
        app.mount("/jobs", create_app(token=os.environ["JOBS_TOKEN"]))      # inside your app
        uvicorn.run(create_app(database_url="sqlite:///jobs.db"))           # or alone

    `queue`: the JobQueue to show (default: the process-wide one, or a new one on
    `database_url`). `token`: a secret every page, API call and WebSocket must present.
    `authorize(connection) -> bool` (sync or async): your own check, e.g. of your session;
    it may also return a viewer scope (an owner string or a `Scope`) instead of True.
    `secret`: the key viewer tokens are signed with (`viewer_token(secret, owner=...)`):
    each lets one of your users' browsers read only that owner's jobs and events.
    `relay`: an EventRelay to take live events from (default: one of its own, started with
    the app's lifespan, or at the first WebSocket when mounted where lifespans do not run).
    `allowed_hosts`: the host names the dashboard is reached by (`Host` header, any port;
    `"*.example.com"` for subdomains, `["*"]` for any); default localhost, 127.0.0.1, [::1].
    Any other host gets a 400 (DNS rebinding).
    `/metrics`: Prometheus metrics, behind the same checks (the `metrics` extra; see
    docs/howto/metrics.md).
    """
    # A bad pattern fails here, at start-up, not as a 400 on every request.
    hosts = None if allowed_hosts is None else normalize_patterns(allowed_hosts)
    if secret is not None and not secret:
        raise ValueError("secret is empty: viewer tokens need a key (e.g. secrets.token_urlsafe(32))")
    if queue is None:
        queue = JobQueue(database_url) if database_url else JobQueue.get()
    owns_relay = relay is None
    if relay is None:
        relay = EventRelay(queue)
    dash = Dashboard(queue=queue, relay=relay, token=token, authorize=authorize, title=title,
                     allowed_origins=tuple(allowed_origins), poll_interval=poll_interval)
    metrics = _metrics(dash)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if not owns_relay:
            yield
            return
        await relay.ensure_running()
        try:
            yield
        finally:
            await relay.aclose()

    async def openapi(request: Request) -> Response:
        return JSONResponse(api.openapi_schema(api_routes, prefix="/api", title=title, version=__version__))

    api_routes = [*api.routes(), *batches.api_routes()]
    routes = [
        Route("/", pages.jobs_page, name="jobs"),
        Route("/jobs/{job_id:int}", pages.job_page, name="job"),
        Route("/queues", pages.queues_page, name="queues"),
        Route("/metrics", metrics.endpoint if metrics is not None else _no_metrics, methods=["GET"], name="metrics"),
        Route("/schedules", pages.schedules_page, name="schedules"),
        *api.form_routes(),
        *batches.page_routes(),
        Mount("/api", routes=[
            *api_routes,
            Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
            WebSocketRoute("/ws", ws.websocket_endpoint),
        ]),
        WebSocketRoute("/ws", ws.websocket_endpoint),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        debug=debug, routes=routes, lifespan=lifespan if metrics is None else metrics.lifespan(lifespan),
        middleware=[Middleware(HostCheck, allowed_hosts=hosts),
                    Middleware(Guard, token=token, authorize=authorize, allowed_origins=tuple(allowed_origins),
                               secret=secret)],
        # Under /api/ every error is JSON: a wrong method (405) and a crash (500) too.
        exception_handlers={404: pages.not_found, HTTPException: pages.http_error, Exception: pages.server_error},
    )
    app.state.activejob = dash
    return app


def _metrics(dash: Dashboard) -> DashboardMetrics | None:
    """The exporter of `/metrics`, or None without the metrics extra (prometheus_client).
    Its gauges take the counts the pages share: a scrape and the viewers count once."""
    try:
        from ..metrics import DashboardMetrics
    except ImportError:
        return None
    return DashboardMetrics(dash.queue, dash.relay, stats=dash.stats)


async def _no_metrics(request: Request) -> Response:
    return PlainTextResponse("/metrics needs the metrics extra: pip install 'activejob[metrics]'", status_code=501)
