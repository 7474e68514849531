"""The example application: start jobs over its JSON API and watch them finish."""

from __future__ import annotations

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
