"""`GET /api/jobs/{id}/explain` and the "why" line of the job page, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from activejob import JobQueue
from activejob.web import create_app, viewer_token

from .conftest import TestClient
from .jobs import Quick

SECRET = "viewer-secret-0123456789abcdef"


@pytest.fixture
def app_client(queue: JobQueue) -> Iterator[TestClient]:
    app = create_app(queue, secret=SECRET)
    with TestClient(app) as c:
        yield c


def test_the_api_explains_a_job(app_client: TestClient, queue: JobQueue) -> None:
    due = Quick.set(queue="mail").perform_later(value=1)
    queue.pause_queue("mail")
    answer = app_client.get(f"/api/jobs/{due.id}/explain")
    assert answer.status_code == 200
    body = answer.json()
    assert body["reason"] == "queue_paused"
    assert body["message"] == queue.explain(due.id).message
    assert body["details"]["queue"] == "mail" and body["details"]["job_id"] == due.id


def test_the_api_says_404_for_an_unknown_job(app_client: TestClient) -> None:
    answer = app_client.get("/api/jobs/424242/explain")
    assert answer.status_code == 404 and answer.json()["error"] == "no job with id 424242"


def test_a_viewer_has_only_its_own_jobs_explained(app_client: TestClient) -> None:
    own = Quick.set(owner="alice").perform_later(value=1).id
    other = Quick.set(owner="bob").perform_later(value=2).id
    mine = {"authorization": f"Bearer {viewer_token(SECRET, owner='alice')}"}
    assert app_client.get(f"/api/jobs/{own}/explain", headers=mine).json()["reason"] == "no_worker"
    refused = app_client.get(f"/api/jobs/{other}/explain", headers=mine)
    assert refused.status_code == 404 and "bob" not in refused.text


def test_the_job_page_and_its_live_fragment_say_why(app_client: TestClient, queue: JobQueue) -> None:
    due = Quick.set(queue="mail").perform_later(value=1)
    queue.pause_queue("mail")
    page = app_client.get(f"/jobs/{due.id}", headers={"accept": "text/html"}).text
    assert 'data-why="queue_paused"' in page and "<code>activejob resume mail</code>" in page
    queue.resume_queue("mail")
    fragment = app_client.get(f"/jobs/{due.id}?fragment=1", headers={"accept": "text/html"}).text
    assert 'data-why="no_worker"' in fragment


def test_openapi_describes_explain(app_client: TestClient) -> None:
    spec = app_client.get("/api/openapi.json").json()
    operation = spec["paths"]["/api/jobs/{job_id}/explain"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Explanation")
    assert "queue_paused" in spec["components"]["schemas"]["Explanation"]["properties"]["reason"]["enum"]
