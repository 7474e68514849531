"""The REST API on the real queue (SQLite file and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from runner_support import wait_for

from activejob import BaseJob, JobQueue, job
from activejob.records import STATUSES
from activejob.signals import INTERNAL_EVENTS

from .conftest import TestClient, csrf_headers
from .jobs import Fail, Quick, Steps, Wait


def test_list_filters_and_pagination(queue: JobQueue, client: TestClient) -> None:
    Quick.set(owner="alice").perform_later(value="needle-123")
    Quick.set(owner="bob", queue="mail").perform_later(value=2)
    Fail.perform_later(message="kaput")
    queue.run_until_idle()
    Steps.perform_later(steps=1)  # stays pending

    body = client.get("/api/jobs").json()
    assert [j["name"] for j in body["jobs"]] == ["web_steps", "web_fail", "web_quick", "web_quick"]
    assert body["has_more"] is False
    first = body["jobs"][0]
    assert first["label"] == "Import rows" and first["phases"] == ["download", "process", "upload"]
    assert first["resource_link"] == "/datasets/d1" and first["actions"] == ["cancel", "delete"]

    def names(**params: object) -> list[str]:
        response = client.get("/api/jobs", params=params)
        assert response.status_code == 200, response.text
        return [f"{j['name']}:{j['owner']}" for j in response.json()["jobs"]]

    assert names(status="failed") == ["web_fail:None"]
    assert names(status="completed,failed") == ["web_fail:None", "web_quick:bob", "web_quick:alice"]
    assert names(owner="alice") == ["web_quick:alice"]
    assert names(queue="mail") == ["web_quick:bob"]
    assert names(name="web_steps") == ["web_steps:None"]
    assert names(q="needle-123") == ["web_quick:alice"]
    assert names(q="kaput") == ["web_fail:None"]
    assert names(order="oldest", limit=2) == ["web_quick:alice", "web_quick:bob"]
    page = client.get("/api/jobs", params={"order": "oldest", "limit": 2, "offset": 2}).json()
    assert [j["name"] for j in page["jobs"]] == ["web_fail", "web_steps"] and page["has_more"] is False
    page = client.get("/api/jobs", params={"limit": 3}).json()
    assert page["has_more"] is True and page["next_offset"] == 3


def test_filters_and_sort_keys_are_allow_listed(client: TestClient) -> None:
    for params in ({"status": "nope"}, {"order": "id; DROP TABLE activejob_jobs"}, {"limit": "0"},
                   {"limit": "100000"}, {"offset": "-1"}, {"parent_id": "x"}, {"q": "x" * 500}):
        response = client.get("/api/jobs", params=params)
        assert response.status_code == 400, params
        assert "error" in response.json()
    page = client.get("/?status=nope", headers={"accept": "text/html"})
    assert page.status_code == 400 and "status must be one of" in page.text


def test_job_detail_events_children_stats_workers_types(queue: JobQueue, client: TestClient) -> None:
    handle = Steps.perform_later(steps=3, delay=0.0)
    queue.run_until_idle()
    detail = client.get(f"/api/jobs/{handle.id}").json()
    job = detail["job"]
    assert job["status"] == "completed" and job["result"] == {"rows": 300}
    assert job["progress_current"] == 3 and job["progress_total"] == 3 and job["duration"] is not None
    kinds = [e["event"] for e in detail["events"]]
    assert kinds[0] == "enqueued" and kinds[1] == "started" and kinds[-1] == "completed"
    assert "progress" in kinds and "log" in kinds
    assert all(e["job_id"] == handle.id for e in detail["events"])
    assert detail["children"] == []

    after = detail["events"][1]["id"]
    rest = client.get(f"/api/jobs/{handle.id}/events", params={"after": after}).json()["events"]
    assert [e["id"] for e in rest] == [e["id"] for e in detail["events"][2:]]
    assert client.get("/api/jobs/999999").status_code == 404
    assert client.get("/api/jobs/999999/events").status_code == 404

    stats = client.get("/api/stats").json()
    assert stats["completed"] == 1 and stats["by_name"]["web_steps"]["completed"] == 1
    assert stats["by_queue"]["default"]["completed"] == 1
    assert client.get("/api/workers").json() == {"workers": []}
    types = {t["name"]: t for t in client.get("/api/job-types").json()["job_types"]}
    assert types["web_steps"]["label"] == "Import rows" and types["web_steps"]["phases"] == list(Steps.options.phases)

    events = client.get("/api/events", params={"after": 0, "job_id": handle.id}).json()
    assert [e["id"] for e in events["events"]] == [e["id"] for e in detail["events"]]
    assert events["cursor"] <= events["events"][-1]["id"]


def test_workers_alive_with_heartbeat(queue: JobQueue, client: TestClient) -> None:
    queue.start()
    try:
        workers = wait_for(lambda: client.get("/api/workers").json()["workers"], what="a live worker")
        assert len(workers) == 1
        assert workers[0]["heartbeat_at"] and "web_steps" in workers[0]["job_types"]
    finally:
        queue.stop()


def test_cancel_acts_only_in_the_expected_state(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    handle = Wait.perform_later(seconds=30)
    wrong = client.post(f"/api/jobs/{handle.id}/cancel", json={"expected_status": "running"}, headers=headers)
    assert wrong.status_code == 409 and wrong.json()["job"]["status"] == "pending"
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
    ok = client.post(f"/api/jobs/{handle.id}/cancel", json={"expected_status": "pending"}, headers=headers)
    assert ok.status_code == 200 and ok.json()["job"]["status"] == "cancelled"
    again = client.post(f"/api/jobs/{handle.id}/cancel", json={}, headers=headers)
    assert again.status_code == 409  # finished jobs cannot be cancelled
    assert client.post("/api/jobs/424242/cancel", json={}, headers=headers).status_code == 404
    bad = client.post(f"/api/jobs/{handle.id}/cancel", json={"expected_status": "bogus"}, headers=headers)
    assert bad.status_code == 400


def test_retry_never_runs_a_job_twice(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    handle = Fail.perform_later(message="first")
    queue.run_until_idle()
    assert queue.get_job(handle.id).status == "failed"  # type: ignore[union-attr]
    first = client.post(f"/api/jobs/{handle.id}/retry", json={"expected_status": "failed"}, headers=headers)
    assert first.status_code == 200 and first.json()["job"]["status"] == "pending"
    # A second click (same page, same expectation) changes nothing.
    second = client.post(f"/api/jobs/{handle.id}/retry", json={"expected_status": "failed"}, headers=headers)
    assert second.status_code == 409 and second.json()["job"]["status"] == "pending"
    assert client.post(f"/api/jobs/{handle.id}/retry", json={}, headers=headers).status_code == 409
    wrong = client.post(f"/api/jobs/{handle.id}/retry", json={"expected_status": "running"}, headers=headers)
    assert wrong.status_code == 400
    enqueued = [e for e in queue.events(handle.id) if e.type == "enqueued"]
    assert len(enqueued) == 2


def test_delete_and_form_posts(queue: JobQueue, client: TestClient) -> None:
    headers = csrf_headers(client)
    token = headers["X-CSRF-Token"]
    done = Quick.perform_later(value=1)
    queue.run_until_idle()
    stale = client.post(f"/api/jobs/{done.id}/delete", json={"expected_status": "pending"}, headers=headers)
    assert stale.status_code == 409 and queue.get_job(done.id) is not None
    # A plain HTML form (no JavaScript) posts to the page's own route: CSRF field, then a redirect.
    form = client.post(f"/jobs/{done.id}/delete", data={"csrf_token": token, "expected_status": "completed"},
                       follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == "/"
    assert queue.get_job(done.id) is None
    assert client.get(f"/api/jobs/{done.id}").status_code == 404

    pending = Quick.perform_later(value=2)
    form = client.post(f"/jobs/{pending.id}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert form.status_code == 303 and form.headers["location"] == f"/jobs/{pending.id}"


def test_state_changes_need_csrf_proof(queue: JobQueue, client: TestClient) -> None:
    handle = Wait.perform_later(seconds=30)
    client.get("/", headers={"accept": "text/html"})  # has the cookie, but sends no proof
    for attempt in ({}, {"headers": {"X-CSRF-Token": "forged-token-forged-token"}},
                    {"json": {"csrf_token": "forged-token-forged-token"}}):
        response = client.post(f"/api/jobs/{handle.id}/cancel", **attempt)  # type: ignore[arg-type]
        assert response.status_code == 403, attempt
    forged = client.post(f"/jobs/{handle.id}/cancel", data={"csrf_token": "forged-token-forged-token"})
    assert forged.status_code == 403  # the page's own form route
    headers = csrf_headers(client)
    cross = client.post(f"/api/jobs/{handle.id}/cancel", headers={**headers, "origin": "https://evil.example"})
    assert cross.status_code == 403
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
    # State changes are POST only.
    assert client.get(f"/api/jobs/{handle.id}/cancel").status_code == 405
    # API clients with an Authorization header need no CSRF token (browsers never add one cross-site).
    response = client.post(f"/api/jobs/{handle.id}/cancel", headers={"authorization": "Bearer x"})
    assert response.status_code == 200


def test_openapi_describes_the_rest_api(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert set(paths) >= {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/retry",
                          "/api/jobs/{job_id}/delete", "/api/events", "/api/stats", "/api/workers", "/api/job-types"}
    assert "post" in paths["/api/jobs/{job_id}/retry"] and "get" not in paths["/api/jobs/{job_id}/retry"]
    params = {p["name"] for p in paths["/api/jobs"]["get"]["parameters"]}
    assert params >= {"status", "name", "queue", "owner", "parent_id", "q", "limit", "offset", "order"}
    assert "409" in paths["/api/jobs/{job_id}/cancel"]["post"]["responses"]


def test_openapi_enums_follow_the_statuses_and_event_types(client: TestClient) -> None:
    schemas = client.get("/api/openapi.json").json()["components"]["schemas"]
    assert schemas["Job"]["properties"]["status"]["enum"] == list(STATUSES)
    events = schemas["Event"]["properties"]["event"]["enum"]
    assert "waiting" in events and "requeued" in events
    assert not set(events) & INTERNAL_EVENTS


def test_job_page_shows_how_many_of_its_type_may_run_at_once(queue: JobQueue, client: TestClient) -> None:
    @job("web_limited", concurrency_limit=3)
    class Limited(BaseJob[Any]):
        async def perform(self, args: Any) -> None: ...

    handle = Limited.perform_later()
    page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
    assert "At most 3 run at once, over all workers" in page
    assert "at most 3 at once" in client.get("/queues", headers={"accept": "text/html"}).text
