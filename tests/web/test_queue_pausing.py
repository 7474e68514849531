"""Pausing and resuming queues over the REST API and from the queues page (SQLite file and
PostgreSQL)."""

from __future__ import annotations

import re

import pytest

from activejob import JobQueue
from activejob.web import create_app

from .conftest import TestClient, csrf_headers
from .jobs import Quick


def _row(page: str, queue: str) -> str:
    """The queues table's row of `queue` in a rendered page."""
    found = re.search(rf'<tr data-queue="{re.escape(queue)}".*?</tr>', page, re.S)
    assert found, f"no row for queue {queue!r}"
    return found.group(0)


def test_pausing_a_queue_needs_csrf_proof(queue: JobQueue, client: TestClient) -> None:
    client.get("/", headers={"accept": "text/html"})  # has the cookie, but sends no proof
    for attempt in ({}, {"headers": {"X-CSRF-Token": "forged-token-forged-token"}},
                    {"json": {"csrf_token": "forged-token-forged-token"}}):
        response = client.post("/api/queues/mail/pause", **attempt)  # type: ignore[arg-type]
        assert response.status_code == 403, attempt
    forged = client.post("/queues/mail/pause", data={"csrf_token": "forged-token-forged-token"})
    assert forged.status_code == 403  # the queues page's own form route
    cross = client.post("/api/queues/mail/pause", headers={**csrf_headers(client), "origin": "https://evil.example"})
    assert cross.status_code == 403
    assert queue.paused_queues() == []


def test_resuming_a_queue_needs_csrf_proof(queue: JobQueue, client: TestClient) -> None:
    queue.pause_queue("mail")
    client.get("/", headers={"accept": "text/html"})
    assert client.post("/api/queues/mail/resume").status_code == 403
    assert queue.paused_queues() == ["mail"]


def test_pause_and_resume_are_post_only(client: TestClient) -> None:
    assert client.get("/api/queues/mail/pause").status_code == 405
    assert client.get("/api/queues/mail/resume").status_code == 405


def test_a_paused_queue_keeps_its_jobs_pending_while_other_queues_run(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/queues/mail/pause", headers=csrf_headers(client))
    assert response.status_code == 200
    assert response.json() == {"queue": "mail", "paused": True, "changed": True}
    held = Quick.set(queue="mail").perform_later(value="held")
    other = Quick.perform_later(value="other")
    queue.run_until_idle()
    assert held.status == "pending"
    assert other.status == "completed"


def test_resuming_a_queue_lets_its_jobs_run(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    client.post("/api/queues/mail/pause", headers=headers)
    held = Quick.set(queue="mail").perform_later(value="held")
    queue.run_until_idle()
    response = client.post("/api/queues/mail/resume", headers=headers)
    assert response.json() == {"queue": "mail", "paused": False, "changed": True}
    queue.run_until_idle()
    assert held.status == "completed"


def test_pausing_twice_reports_no_change(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    assert client.post("/api/queues/mail/pause", headers=headers).json()["changed"] is True
    again = client.post("/api/queues/mail/pause", headers=headers)
    assert again.status_code == 200
    assert again.json() == {"queue": "mail", "paused": True, "changed": False}


def test_resuming_a_queue_that_is_not_paused_reports_no_change(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/queues/mail/resume", headers=csrf_headers(client))
    assert response.status_code == 200
    assert response.json() == {"queue": "mail", "paused": False, "changed": False}


@pytest.mark.parametrize("path", ["/api/queues//pause", "/api/queues/%20/resume", f"/api/queues/{'q' * 201}/pause"],
                         ids=["empty", "blank", "too-long"])
def test_a_bad_queue_name_is_refused(queue: JobQueue, client: TestClient, path: str) -> None:
    response = client.post(path, headers=csrf_headers(client))
    assert response.status_code == 400
    assert "a queue name is a non-empty string of at most 200 characters" in response.json()["error"]
    assert queue.paused_queues() == []


def test_a_queue_name_may_hold_a_slash(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/queues/mail/bulk/pause", headers=csrf_headers(client))
    assert response.json() == {"queue": "mail/bulk", "paused": True, "changed": True}
    assert queue.paused_queues() == ["mail/bulk"]


def test_api_clients_with_an_authorization_header_pause_without_csrf(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/queues/mail/pause", headers={"authorization": "Bearer x"})
    assert response.status_code == 200
    assert queue.paused_queues() == ["mail"]


def test_pausing_needs_the_token_of_a_protected_dashboard(queue: JobQueue) -> None:
    with TestClient(create_app(queue, token="s3cret-token-for-tests")) as client:
        assert client.post("/api/queues/mail/pause").status_code == 401
        assert client.post("/api/queues/mail/pause", headers={"authorization": "Bearer wrong"}).status_code == 401
        assert queue.paused_queues() == []
        ok = client.post("/api/queues/mail/pause", headers={"authorization": "Bearer s3cret-token-for-tests"})
        assert ok.status_code == 200 and queue.paused_queues() == ["mail"]


def test_a_plain_form_pauses_and_redirects_to_the_queues_page(queue: JobQueue, client: TestClient) -> None:
    token = csrf_headers(client)["X-CSRF-Token"]
    form = client.post("/queues/mail/pause", data={"csrf_token": token}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/queues"
    assert queue.paused_queues() == ["mail"]


def test_stats_list_the_paused_queues(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    client.post("/api/queues/mail/pause", headers=headers)
    client.post("/api/queues/bulk/pause", headers=headers)
    assert client.get("/api/stats").json()["paused_queues"] == ["bulk", "mail"]


def test_queues_page_offers_resume_for_a_paused_queue_and_pause_for_others(queue: JobQueue,
                                                                           client: TestClient) -> None:
    Quick.set(queue="mail").perform_later(value=1)
    Quick.perform_later(value=2)
    queue.pause_queue("mail")
    page = client.get("/queues", headers={"accept": "text/html"}).text
    paused, running = _row(page, "mail"), _row(page, "default")
    assert "data-paused-badge" in paused and 'action="/queues/mail/resume"' in paused and ">Resume<" in paused
    assert 'data-api="/api/queues/mail/resume"' in paused  # where the page's script sends it, as JSON
    assert "data-paused-badge" not in running and 'action="/queues/default/pause"' in running
    assert ">Pause<" in running


def test_queues_page_lists_a_paused_queue_without_jobs(queue: JobQueue, client: TestClient) -> None:
    queue.pause_queue("empty")
    page = client.get("/queues", headers={"accept": "text/html"}).text
    row = _row(page, "empty")
    assert "data-paused-badge" in row and ">Resume<" in row


def test_queue_buttons_carry_the_csrf_token(queue: JobQueue, client: TestClient) -> None:
    Quick.perform_later(value=1)
    page = client.get("/queues", headers={"accept": "text/html"})
    token = client.cookies.get("activejob_csrf")
    assert token and f'name="csrf_token" value="{token}"' in _row(page.text, "default")


def test_openapi_describes_pause_and_resume(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    for verb in ("pause", "resume"):
        operation = spec["paths"][f"/api/queues/{{name}}/{verb}"]["post"]
        assert operation["operationId"] == f"{verb}_queue"
        assert [p["name"] for p in operation["parameters"]] == ["name"]
        assert {"200", "400", "403"} <= set(operation["responses"])
    assert "paused_queues" in spec["components"]["schemas"]["Stats"]["properties"]
    assert set(spec["components"]["schemas"]["QueueState"]["properties"]) == {"queue", "paused", "changed"}
