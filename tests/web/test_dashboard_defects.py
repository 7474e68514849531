"""Dashboard defects seen in a browser, checked through the test client: the timeline's
order, human times, the Result box, status counts under a search, stale progress, favicons."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from activejob import BaseJob, JobQueue, job
from activejob.records import EventRecord
from activejob.web.pages import timeline

from .conftest import TestClient
from .jobs import Fail, Quick


class FlakyArgs(BaseModel):
    steps: int = 80


@job("defects_flaky", schema=FlakyArgs, max_retries=3, backoff=600.0, label="Flaky import")
class Flaky(BaseJob[FlakyArgs]):
    """Reports some progress, then fails: retried ten minutes later."""

    async def perform(self, args: FlakyArgs) -> None:
        self.progress_count(25, args.steps, message="sleeping", phase="download")
        raise RuntimeError("the upstream API answered 503")


def _event(id_: int, kind: str, at: datetime, **data: Any) -> EventRecord:
    return EventRecord(id=id_, job_id=1, type=kind, name="defects_flaky", queue="default", owner=None,
                       status="running", attempt=1, created_at=at, data=data)


def test_timeline_orders_by_time_then_id() -> None:
    t0 = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
    events = [
        _event(1, "started", t0),
        _event(2, "progress", t0 + timedelta(seconds=2), phase="process"),
        _event(3, "log", t0 + timedelta(seconds=1), message="connected"),  # written later, happened earlier
        _event(4, "completed", t0 + timedelta(seconds=2)),
    ]
    assert [e["id"] for e in timeline(events)] == [1, 3, 2, 4]


def test_retry_times_are_human_not_iso(queue: JobQueue, client: TestClient) -> None:
    handle = Flaky.perform_later()
    queue.run_until_idle()
    assert queue.get_job(handle.id).status == "pending"  # type: ignore[union-attr]
    html = client.get(f"/jobs/{handle.id}").text
    assert "next attempt" in html
    # No raw ISO timestamp is written as text: times are <time datetime=...> with a UTC title.
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text), re.findall(r"[^\n]*\d{4}-\d\d-\d\dT[^\n]*", text)
    assert re.search(r'next attempt <time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">', html)


def test_result_box_shows_no_python_none(queue: JobQueue, client: TestClient) -> None:
    failed = Fail.perform_later(message="boom")
    queue.run_until_idle()
    cancelled = Quick.perform_later(value=1)
    queue.cancel(cancelled.id)
    for handle in (failed, cancelled):
        html = client.get(f"/jobs/{handle.id}").text
        box = html.split("<h2>Result</h2>", 1)[1].split("</div>", 1)[0]
        assert "None" not in box, box
        assert "—" in box


def test_status_counts_follow_the_search(queue: JobQueue, client: TestClient) -> None:
    Quick.perform_later(value="apple")
    Quick.perform_later(value="banana")
    Fail.perform_later(message="cherry")
    queue.run_until_idle()

    def counts(**params: str) -> dict[str, int]:
        html = client.get("/", params={**params, "fragment": "1"}).text
        tab = r'class="tab[^"]*"[^>]*>(?:<span[^>]*></span>)?(\w+) <span class="count">([\d,]+)</span>'
        found = re.findall(tab, html)
        return {label.lower(): int(n.replace(",", "")) for label, n in found}

    every = counts()
    assert every["all"] == 3 and every["completed"] == 2 and every["failed"] == 1
    searched = counts(q="banana")
    assert searched["all"] == 1 and searched["completed"] == 1 and searched["failed"] == 0
    assert counts(q="cherry")["failed"] == 1 and counts(q="cherry")["completed"] == 0
    assert counts(name="web_fail")["all"] == 1


def test_a_retrying_job_shows_no_stale_progress(queue: JobQueue, client: TestClient) -> None:
    handle = Flaky.perform_later()
    queue.run_until_idle()
    job_ = queue.get_job(handle.id)
    assert job_ is not None and job_.status == "pending" and job_.attempts == 1
    page = client.get(f"/jobs/{handle.id}").text
    card = page.split('id="progress-card"', 1)[1].split("</div>\n    </div>", 1)[0]
    assert "25 of 80" not in card and "sleeping" not in card and "31%" not in card
    assert "Not started yet" in card
    row = client.get("/", params={"fragment": "1"}).text
    row = row.split(f'data-job-id="{handle.id}"', 1)[1].split("</tr>", 1)[0]
    assert "25 of 80" not in row and "sleeping" not in row


def test_progress_separator_is_rendered(queue: JobQueue, client: TestClient) -> None:
    handle = Flaky.perform_later()
    queue.run_until_idle()
    html = client.get("/", params={"fragment": "1"}).text
    cell = html.split(f'data-progress-for="{handle.id}"', 1)[1].split("</td>", 1)[0]
    # Always there (hidden until both a count and a message show), so live updates can show it.
    assert "data-sep" in cell
    page = client.get(f"/jobs/{handle.id}").text
    assert "data-sep" in page.split('id="progress-card"', 1)[1]


def test_pages_name_a_favicon_that_is_served(client: TestClient) -> None:
    html = client.get("/").text
    href = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert href
    icon = client.get(href.group(1))
    assert icon.status_code == 200 and "svg" in icon.headers["content-type"]


def test_example_app_page_has_a_favicon() -> None:
    from example_app.app import PAGE

    assert re.search(r'<link rel="icon"[^>]+href="data:image/svg\+xml,', PAGE)
