"""Batches on the REST API and the dashboard (real queue, real browser)."""

from __future__ import annotations

from typing import Any

from runner_support import wait_for

from activejob import Batch, JobQueue
from activejob.web import create_app, viewer_token

from .conftest import TestClient, csrf_headers
from .jobs import Fail, Quick, Wait
from .test_browser import browser, page, server  # noqa: F401  (the browser fixtures)

SECRET = "viewer-secret-0123456789abcdef"


def test_the_api_lists_a_batch_with_its_counts_and_members(queue: JobQueue, client: TestClient) -> None:
    with Batch(on_complete=Quick.set(), description="nightly import") as batch:
        Quick.perform_all_later([{"value": 1}, {"value": 2}])
        Fail.perform_later(message="row 3 is broken")
    queue.run_until_idle()

    listed = client.get("/api/batches").json()["batches"]
    assert [(b["id"], b["description"]) for b in listed] == [(batch.id, "nightly import")]
    body = client.get(f"/api/batches/{batch.id}").json()
    assert {k: body["batch"][k] for k in ("total", "completed", "failed", "finished", "progress")} == {
        "total": 3, "completed": 2, "failed": 1, "finished": True, "progress": 1.0}
    assert sorted(m["name"] for m in body["members"]) == ["web_fail", "web_quick", "web_quick"]
    assert [c["name"] for c in body["callbacks"]] == ["web_quick"]
    assert client.get("/api/batches", params={"unfinished": "true"}).json()["batches"] == []


def test_an_unknown_batch_is_404(client: TestClient) -> None:
    assert client.get("/api/batches/999").status_code == 404


def test_cancel_batch_over_the_api_needs_csrf_and_cancels_members(queue: JobQueue, client: TestClient) -> None:
    with Batch() as batch:
        Wait.perform_all_later([{"seconds": 60}, {"seconds": 60}])
    assert client.post(f"/api/batches/{batch.id}/cancel").status_code == 403  # no CSRF proof
    response = client.post(f"/api/batches/{batch.id}/cancel", headers=csrf_headers(client))
    assert response.status_code == 200, response.text
    assert response.json()["batch"]["cancelled"] == 2
    assert response.json()["batch"]["finished"] is True


def test_a_viewer_sees_only_its_owners_batches_and_cannot_cancel(queue: JobQueue) -> None:
    with Batch(owner="ann") as mine:
        Quick.set(owner="ann").perform_later(value=1)
    with Batch(owner="bob") as theirs:
        Quick.set(owner="bob").perform_later(value=2)
    app = create_app(queue, secret=SECRET)
    token = viewer_token(SECRET, owner="ann", ttl=60)
    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert [b["id"] for b in c.get("/api/batches", headers=auth).json()["batches"]] == [mine.id]
        assert c.get(f"/api/batches/{theirs.id}", headers=auth).status_code == 404
        assert c.post(f"/api/batches/{mine.id}/cancel", headers=auth).status_code == 403


def test_the_batch_page_shows_counts_and_a_member_links_its_batch(queue: JobQueue, client: TestClient) -> None:
    with Batch(description="crawl") as batch:
        handle = Quick.perform_later(value=1)
    queue.run_until_idle()
    html = client.get(f"/batches/{batch.id}", headers={"accept": "text/html"})
    assert html.status_code == 200
    assert "crawl" in html.text and 'data-count-completed>1<' in html.text
    job_page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
    assert f'href="/batches/{batch.id}" data-batch-link' in job_page
    assert f'/batches/{batch.id}' in client.get("/batches", headers={"accept": "text/html"}).text


def test_the_batch_page_follows_progress_live_in_a_browser(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, queue = server
    queue.pause_queue("default")
    with Batch(description="live batch") as batch:
        Quick.perform_all_later([{"value": i} for i in range(4)])
    page.goto(f"{base}/batches/{batch.id}")
    page.wait_for_selector("#conn[data-state=live]")
    assert page.locator("[data-count-pending]").inner_text() == "4"
    queue.resume_queue("default")
    page.wait_for_selector("[data-count-completed]:text('4')", timeout=20_000)
    page.wait_for_selector("[data-batch-state]:has-text('finished')")
    wait_for(lambda: queue.get_batch(batch.id).finished, what="the batch to finish")  # type: ignore[arg-type,union-attr]



def test_the_cancel_batch_button_cancels_and_returns_to_the_batch(server: tuple[str, JobQueue],  # noqa: F811
                                                                  page: Any) -> None:  # noqa: F811
    base, queue = server
    queue.pause_queue("default")  # its members stay pending until cancelled
    with Batch(description="to cancel") as batch:
        Wait.perform_all_later([{"seconds": 60}, {"seconds": 60}])
    page.goto(f"{base}/batches/{batch.id}")
    page.click("[data-action=cancel-batch]")  # a plain form: it posts to the page's own route
    page.wait_for_url(f"{base}/batches/{batch.id}")
    page.wait_for_selector("[data-batch-state]:has-text('finished')")
    assert queue.get_batch(batch.id).cancelled == 2  # type: ignore[union-attr]
