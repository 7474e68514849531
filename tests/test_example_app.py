"""The example application: start jobs over its JSON API and watch them finish."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activejob import JobQueue

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when it finds httpx instead.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, where example_app lives
from example_app import create_app

pytestmark = pytest.mark.imported_schedules  # the app's nightly cleanup runs on a cron schedule


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(f"sqlite:///{tmp_path}/example.db", poll_interval=0.05, progress_interval=0.05)
    # The lifespan runs the in-process worker; the dashboard answers only its own host names.
    with TestClient(app, base_url="http://localhost") as client:
        yield client
    JobQueue.reset()


def wait_finished(client: TestClient, job_id: int, timeout: float = 8.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        time.sleep(0.05)


def test_page_is_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "activejob example" in page.text
    if client.app.state.dashboard:  # type: ignore[attr-defined]
        assert client.get("/jobs/").status_code == 200


def test_an_email_job_runs_to_completion(client: TestClient) -> None:
    started = client.post("/api/jobs", json={"kind": "email", "args": {"to": "a@example.com"}})
    assert started.status_code == 201
    job = wait_finished(client, started.json()["id"])
    assert job["status"] == "completed" and job["result"] == {"sent": True, "to": "a@example.com"}
    listing = client.get("/api/jobs").json()
    assert listing["counts"]["completed"] == 1 and listing["worker"]["state"] == "running"


def test_a_report_reports_progress_by_phase(client: TestClient) -> None:
    started = client.post("/api/jobs", json={"kind": "report", "args": {"rows": 5, "seconds": 0.3}})
    job = wait_finished(client, started.json()["id"])
    assert job["status"] == "completed"
    assert (job["progress_phase"], job["progress_current"], job["progress_total"]) == ("render", 10, 10)


def test_bad_arguments_are_refused_with_the_field(client: TestClient) -> None:
    refused = client.post("/api/jobs", json={"kind": "email", "args": {"to": 5}})
    assert refused.status_code == 422 and refused.json()["fields"] == ["to"]
    assert client.post("/api/jobs", json={"kind": "nope"}).status_code == 400


def test_a_pending_job_can_be_cancelled(client: TestClient) -> None:
    started = client.post("/api/jobs", json={"kind": "report", "args": {"rows": 50, "seconds": 5}})
    job_id = started.json()["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel").json()["status"] in ("cancelled", "running")
    assert wait_finished(client, job_id)["status"] == "cancelled"


def test_a_fan_out_runs_every_child_then_adds_up_their_results(client: TestClient) -> None:
    started = client.post("/api/jobs", json={"kind": "orders", "args": {"orders": 3}})
    parent = wait_finished(client, started.json()["id"])
    assert parent["status"] == "completed" and parent["result"] == {"orders": 3, "total": 60, "failed": 0}
    children = client.app.state.queue.list_jobs(parent_id=parent["id"])  # type: ignore[attr-defined]
    assert sorted(c.result for c in children) == [10, 20, 30]



def test_a_batch_of_thumbnails_calls_back_once_all_have_finished(client: TestClient) -> None:
    started = client.post("/api/batches", json={"images": 3})
    assert started.status_code == 201 and len(started.json()["jobs"]) == 3
    batch_id = started.json()["batch_id"]
    for job_id in started.json()["jobs"]:
        assert wait_finished(client, job_id)["status"] == "completed"
    queue = client.app.state.queue  # type: ignore[attr-defined]
    deadline = time.monotonic() + 8
    while not (callbacks := queue.list_jobs(name="album_ready", status="completed")):
        assert time.monotonic() < deadline, "the batch's callback did not run"
        time.sleep(0.05)
    assert callbacks[0].result == {"album": "album of 3 images", "thumbnails": 3, "completed": 3, "failed": 0}
    batch = client.get(f"/api/batches/{batch_id}").json()
    assert (batch["finished"], batch["completed"], batch["progress"]) == (True, 3, 1.0)


def test_a_batch_of_a_bad_size_is_refused(client: TestClient) -> None:
    refused = client.post("/api/batches", json={"images": 0})
    assert refused.status_code == 400 and "images" in refused.json()["error"]

def test_the_worker_enqueues_the_next_nightly_cleanup_from_its_cron_schedule(client: TestClient) -> None:
    queue = client.app.state.queue  # type: ignore[attr-defined]
    schedules = {s["job"]: s for s in queue.recurring()}
    assert schedules["nightly_cleanup"]["cron"] == "0 3 * * *"
    deadline = time.monotonic() + 8
    while not (pending := queue.list_jobs(name="nightly_cleanup", status="pending")):
        assert time.monotonic() < deadline, "the worker did not enqueue the next slot"
        time.sleep(0.05)
    assert pending[0].run_at.hour == 3 and pending[0].run_at.minute == 0


def test_the_nightly_cleanup_deletes_finished_jobs_older_than_its_cutoff(client: TestClient) -> None:
    email = wait_finished(client, client.post("/api/jobs", json={"kind": "email"}).json()["id"])
    cleanup = client.post("/api/jobs", json={"kind": "cleanup", "args": {"older_than_hours": 0}})
    assert wait_finished(client, cleanup.json()["id"])["result"] == {"deleted": 1}
    assert client.get(f"/api/jobs/{email['id']}").status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.postgres
@pytest.mark.slow
def test_example_pg_serves_the_app_while_separate_worker_processes_run_its_jobs(pg_url: str, tmp_path: Path) -> None:
    import httpx
    import psutil
    from runner_support import ROOT, wait_for

    port = _free_port()
    log = tmp_path / "example-pg.log"
    with open(log, "wb") as out:
        app = subprocess.Popen([sys.executable, "-m", "example_app.pg", "--database-url", pg_url, "--port", str(port),
                                "--workers", "2"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    family: list[psutil.Process] = []
    try:
        web = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)
        listing = wait_for(lambda: _answer(web, "/api/jobs"), 20, what=f"the server to answer:\n{log.read_text()}")
        assert listing["worker"]["state"] != "running"  # the web process runs no jobs itself
        started = [web.post("/api/jobs", json=body).json()["id"] for body in (
            {"kind": "email"}, {"kind": "orders", "args": {"orders": 3}})]
        album = web.post("/api/batches", json={"images": 3}).json()
        finished = [wait_for(lambda i=i: _finished(web, i), 15, what=f"job {i}:\n{log.read_text()}") for i in started]
        assert [job["status"] for job in finished] == ["completed", "completed"]
        assert finished[1]["result"] == {"orders": 3, "total": 60, "failed": 0}
        batch = wait_for(lambda: (b := web.get(f"/api/batches/{album['batch_id']}").json())["finished"] and b, 15,
                         what="the batch to finish")
        assert (batch["completed"], batch["failed"]) == (3, 0)
        family = psutil.Process(app.pid).children(recursive=True)
        queue = JobQueue(pg_url)
        workers = wait_for(lambda: len(w := queue.workers()) == 2 and w, 10, what="two live workers")
        assert {w.pid for w in workers} <= {p.pid for p in family}
        app.send_signal(signal.SIGTERM)
        assert app.wait(30) == 0, log.read_text()
        assert wait_for(lambda: not queue.workers(), 10, what="the workers to leave")
        queue.close()
    finally:
        for proc in [psutil.Process(app.pid), *family] if app.poll() is None else family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        app.wait(10)


def _answer(web: Any, path: str) -> Any:
    try:
        response = web.get(path)
    except Exception:  # not listening yet
        return None
    return response.json() if response.status_code == 200 else None


def _finished(web: Any, job_id: int) -> Any:
    job = web.get(f"/api/jobs/{job_id}").json()
    return job if job["status"] in ("completed", "failed", "cancelled") else None
