"""The bulk actions on the REST API: retry all failed, cancel or delete a list of jobs,
each CSRF-guarded, refused to viewers, and state-guarded by the store."""

from __future__ import annotations

from activejob import JobQueue
from activejob.web import create_app, viewer_token

from .conftest import TestClient, csrf_headers
from .jobs import Fail, Quick, Wait


def test_retry_failed_retries_only_failed_jobs_of_the_type(queue: JobQueue, client: TestClient) -> None:
    broken = [Fail.perform_later(message="kaput") for _ in range(2)]
    done = Quick.perform_later(value=1)
    queue.run_until_idle()
    answer = client.post("/api/jobs/retry-failed", json={"name": "web_fail"}, headers=csrf_headers(client))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"retried": 2}
    assert [queue.get_job(h.id).status for h in broken] == ["pending", "pending"]  # type: ignore[union-attr]
    assert queue.get_job(done.id).status == "completed"  # type: ignore[union-attr]


def test_retry_failed_honours_the_search(queue: JobQueue, client: TestClient) -> None:
    Fail.perform_later(message="timeout talking to the bank")
    other = Fail.perform_later(message="bad card")
    queue.run_until_idle()
    answer = client.post("/api/jobs/retry-failed", json={"q": "timeout"}, headers=csrf_headers(client))
    assert answer.json() == {"retried": 1}
    assert queue.get_job(other.id).status == "failed"  # type: ignore[union-attr]


def test_cancel_many_cancels_pending_jobs_and_skips_finished_ones(queue: JobQueue, client: TestClient) -> None:
    done = Quick.perform_later(value=1)
    queue.run_until_idle()
    waiting = [Wait.perform_later(seconds=60) for _ in range(2)]
    ids = [done.id, *(h.id for h in waiting)]
    answer = client.post("/api/jobs/cancel", json={"ids": ids}, headers=csrf_headers(client))
    assert answer.json() == {"cancelled": 2, "skipped": 1}
    assert [queue.get_job(h.id).status for h in waiting] == ["cancelled", "cancelled"]  # type: ignore[union-attr]


def test_delete_many_deletes_finished_jobs_and_skips_pending_ones(queue: JobQueue, client: TestClient) -> None:
    done = Quick.perform_later(value=1)
    queue.run_until_idle()
    pending = Quick.perform_later(value=2)
    answer = client.post("/api/jobs/delete", json={"ids": [done.id, pending.id]}, headers=csrf_headers(client))
    assert answer.json() == {"deleted": 1, "skipped": 1}
    assert queue.get_job(done.id) is None and queue.get_job(pending.id) is not None


def test_bulk_actions_need_csrf_proof(queue: JobQueue, client: TestClient) -> None:
    pending = Quick.perform_later(value=1)
    for path, body in (("/api/jobs/cancel", {"ids": [pending.id]}), ("/api/jobs/delete", {"ids": [pending.id]}),
                       ("/api/jobs/retry-failed", {})):
        answer = client.post(path, json=body)
        assert answer.status_code == 403, path
    assert queue.get_job(pending.id).status == "pending"  # type: ignore[union-attr]


def test_a_viewer_token_gets_403_for_bulk_actions(queue: JobQueue) -> None:
    pending = Quick.set(owner="alice").perform_later(value=1)
    token = viewer_token("s" * 32, owner="alice", can_cancel=True)
    with TestClient(create_app(queue, secret="s" * 32)) as c:
        for path, body in (("/api/jobs/cancel", {"ids": [pending.id]}), ("/api/jobs/delete", {"ids": [pending.id]}),
                           ("/api/jobs/retry-failed", {})):
            assert c.post(path, json=body, headers={"Authorization": f"Bearer {token}"}).status_code == 403, path
    assert queue.get_job(pending.id).status == "pending"  # type: ignore[union-attr]


def test_bad_id_lists_are_refused_naming_the_field(client: TestClient) -> None:
    headers = csrf_headers(client)
    for body in ({}, {"ids": []}, {"ids": ["1"]}, {"ids": [True]}, {"ids": list(range(1, 1002))}):
        answer = client.post("/api/jobs/cancel", json=body, headers=headers)
        assert answer.status_code == 400 and "ids" in answer.json()["error"], body


def test_the_bulk_endpoints_are_in_the_api_description(client: TestClient) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"/api/jobs/retry-failed", "/api/jobs/cancel", "/api/jobs/delete", "/api/activity"} <= set(paths)
