"""Fixtures of the web tests: a dashboard app on the real queue, WebSocket helpers, and
worker processes (always killed in teardown)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import anyio
import pytest

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns, once, at import when it finds httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient as StarletteTestClient

from activejob import JobQueue
from activejob.web import create_app

ROOT = Path(__file__).resolve().parents[2]


class TestClient(StarletteTestClient):
    """Starlette's TestClient, on http://localhost: the dashboard answers only the host names
    it is served as, loopback by default, and Starlette's own `testserver` is none of them."""

    def __init__(self, app: Any, base_url: str = "http://localhost", **options: Any) -> None:
        super().__init__(app, base_url=base_url, **options)

    def websocket_connect(self, url: str, *args: Any, **kwargs: Any) -> Any:
        # Starlette joins WebSocket paths to ws://testserver, whatever the base_url.
        scheme = "wss" if self.base_url.scheme == "https" else "ws"
        return super().websocket_connect(urljoin(f"{scheme}://{self.base_url.netloc.decode()}", url), *args, **kwargs)


def receive(ws: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The next JSON message of a TestClient WebSocket, or fail after `timeout` seconds."""
    async def get() -> Any:
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    message = ws.portal.call(get)
    ws._raise_on_close(message)
    data: dict[str, Any] = strict_json(message["text"])
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON: browsers' JSON.parse refuses it")


def strict_json(text: str) -> Any:
    """Parse JSON as a browser does: Python's json.loads would accept NaN and Infinity."""
    return json.loads(text, parse_constant=_no_constant)


def receive_until(ws: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
                  ) -> list[dict[str, Any]]:
    """Messages up to and including the first that matches `predicate`."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no matching message within {timeout}s; got {[m.get('event', m) for m in seen]}")
        message = receive(ws, left)
        seen.append(message)
        if predicate(message):
            return seen


def csrf_headers(client: TestClient) -> dict[str, str]:
    """Visit a page (which sets the CSRF cookie) and return the header that proves it."""
    client.get("/", headers={"accept": "text/html"})
    token = client.cookies.get("activejob_csrf")
    assert token
    return {"X-CSRF-Token": token}


@pytest.fixture
def client(queue: JobQueue) -> Iterator[TestClient]:
    """The dashboard app on the test's queue, its lifespan (and event relay) running."""
    app = create_app(queue)
    app.state.activejob.relay.poll_interval = 0.2
    with TestClient(app) as c:
        yield c


@pytest.fixture
def spawn_worker(db_url: str) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start `activejob worker` processes on the test's database; all are killed after."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("ACTIVEJOB_DATABASE_URL", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "activejob", "worker", "--database-url", db_url, "--import", "tests.web.jobs",
             "--poll-interval", "0.1", "--concurrency", "4", *extra],
            cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def your_app(dashboard: Any) -> Any:
    """An application embedding the dashboard as the docs show: mounted at /jobs, beside its
    own page /my-app?job=42&job=43&token=..., a progress widget for each job (with the viewer
    token, if given). A real page of the same origin, so the browser lets the widget open its
    WebSocket (a page made up by the browser's test driver is refused one to localhost)."""
    from html import escape

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Mount, Route

    async def my_app(request: Request) -> HTMLResponse:
        token = request.query_params.get("token")
        extra = f' token="{escape(token)}"' if token else ""
        widgets = "".join(f'<activejob-progress id="job-{int(j)}" job-id="{int(j)}"{extra}></activejob-progress>'
                          for j in request.query_params.getlist("job"))
        return HTMLResponse(f'<script src="/jobs/static/activejob-progress.js"></script>{widgets}')

    return Starlette(routes=[Route("/my-app", my_app), Mount("/jobs", app=dashboard)])


@contextmanager
def served(url: str, **app_options: Any) -> Iterator[tuple[str, JobQueue]]:
    """The dashboard on a real port (uvicorn on a thread) with an in-process worker, for
    browser tests: yields its base URL (/jobs, inside `your_app`) and the queue; everything
    stops after."""
    import socket
    import threading

    import uvicorn
    from runner_support import wait_for

    import activejob

    queue = activejob.configure(url, poll_interval=0.05, progress_interval=0.05, lease=5, cancel_grace=0.5)
    app = your_app(create_app(queue, poll_interval=1.0, **app_options))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    queue.start()
    try:
        wait_for(lambda: srv.started, timeout=20, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}/jobs", queue
    finally:
        queue.stop(timeout=10)
        srv.should_exit = True
        thread.join(timeout=10)
        JobQueue.reset()
