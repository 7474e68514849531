"""The dashboard in real headless Chromium: live progress without reloading, Cancel, Pause.

Runs the app with uvicorn on a free port and an in-process worker (SQLite). Screenshots
go to a temporary directory, or to $ACTIVEJOB_SCREENSHOTS (e.g. docs/images)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from runner_support import unavailable, wait_for

import activejob
from activejob import JobQueue

from .conftest import served
from .jobs import Fail, Parent, Quick, QuickArgs, Steps, Wait

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@activejob.job("browser_flaky", schema=QuickArgs, max_retries=2, backoff=600.0, label="Flaky import")
class Flaky(activejob.BaseJob[QuickArgs]):
    """Reports progress, then fails: retried ten minutes later (for the stale-progress test)."""

    async def perform(self, args: QuickArgs) -> None:
        self.progress_count(25, 80, message="sleeping")
        await anyio.sleep(1.5)
        raise RuntimeError("the upstream API answered 503")


def _chromium_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "python playwright is not installed"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _chromium_missing()
    if problem:
        unavailable(problem, "browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def server(sqlite_url: str) -> Iterator[tuple[str, JobQueue]]:
    with served(sqlite_url) as running:
        yield running


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert not errors, errors


def shots() -> Path | None:
    where = os.environ.get("ACTIVEJOB_SCREENSHOTS")
    return Path(where) if where else None


def test_progress_advances_live_and_ends_completed(server: tuple[str, JobQueue], page: Any, tmp_path: Path) -> None:
    base, queue = server
    Quick.set(owner="alice").perform_later(value={"greeting": "hello"})
    Quick.set(owner="bob", queue="mail").perform_later(value={"to": "bob@example.com"})
    Fail.perform_later(message="the upstream API answered 503")
    Steps.set(wait=3600).perform_later(steps=3, dataset="nightly")  # scheduled for later
    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=live]")
    handle = Steps.perform_later(steps=24, delay=0.12, dataset="customers-2026")
    # The new job appears in the list without a reload, and its bar moves.
    row = page.locator(f'tr[data-job-id="{handle.id}"]')
    row.wait_for()
    page.wait_for_function(
        f'() => {{ const b = document.querySelector(\'tr[data-job-id="{handle.id}"] progress\');'
        f' return b && !b.hidden && b.value > 20 && b.value < 100; }}')
    if shots():
        page.screenshot(path=str(shots() / "dashboard-jobs.png"))  # type: ignore[operator]

    page.click(f'tr[data-job-id="{handle.id}"] a.job-link')
    page.wait_for_selector("#conn[data-state=live]")
    bar = page.locator("#progress-card progress")
    first = float(bar.get_attribute("value") or 0)
    page.wait_for_function(f"() => document.querySelector('#progress-card progress').value > {first + 10}")
    assert "of 24" in page.locator("#progress-card [data-count]").inner_text()
    if shots():
        page.wait_for_function("() => document.querySelector('#progress-card progress').value > 50")
        page.screenshot(path=str(shots() / "dashboard-job.png"), full_page=True)  # type: ignore[operator]
    page.wait_for_selector(".job-head [data-status-badge]:text('completed')", timeout=30_000)
    assert float(bar.get_attribute("value") or 0) == 100
    assert '"rows": 2400' in page.locator("pre.json").nth(1).inner_text()
    assert page.locator(".timeline .ev-completed").count() == 1
    assert queue.get_job(handle.id).status == "completed"  # type: ignore[union-attr]
    page.screenshot(path=str(tmp_path / "job.png"))


def test_cancel_a_running_job_with_its_button(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    handle = Wait.perform_later(seconds=60)
    wait_for(lambda: queue.get_job(handle.id).status == "running", what="the job to start")  # type: ignore[union-attr]
    page.goto(f"{base}/jobs/{handle.id}")
    page.wait_for_selector("#conn[data-state=live]")
    page.click("[data-watch]")  # toasts for watched jobs
    page.click("form[data-action=cancel] button")
    page.wait_for_selector(".job-head [data-status-badge]:text('cancelled')", timeout=30_000)
    page.wait_for_selector(".toast-warn:has-text('cancelled')")
    assert queue.get_job(handle.id).status == "cancelled"  # type: ignore[union-attr]
    assert page.locator("form[data-action=retry] button").is_visible()


def test_the_list_refreshes_when_a_job_starts_waiting(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    queue.pause_queue("held")  # the child never starts, so its events cannot refresh the list for us
    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=live]")
    handle = Parent.perform_later()
    page.wait_for_selector(f'tr[data-job-id="{handle.id}"][data-status=running]')
    page.wait_for_selector(f'tr[data-job-id="{handle.id}"][data-status=waiting]', timeout=15_000)
    assert queue.get_job(handle.id).status == "waiting"  # type: ignore[union-attr]


def test_pause_a_queue_with_its_button(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    Quick.set(queue="mail").perform_later(value=1)  # a queue is listed once it has jobs
    page.goto(f"{base}/queues")
    page.wait_for_selector("#conn[data-state=live]")
    page.click("tr[data-queue=mail] form[data-action=pause] button")
    page.wait_for_selector("tr[data-queue=mail] [data-paused-badge]")
    page.wait_for_selector(".toast-info:has-text('Queue mail paused')")
    assert page.locator("tr[data-queue=mail] form[data-action=resume] button").is_visible()
    assert queue.paused_queues() == ["mail"]
    if shots():  # with some work held in the paused queue, beside a queue that goes on
        held = [Quick.set(queue="mail").perform_later(value=n) for n in range(3)]
        done = Quick.perform_later(value="default goes on")
        wait_for(lambda: done.status == "completed", what="the default queue's job")
        assert all(h.status == "pending" for h in held)
        page.reload()
        page.wait_for_selector("#conn[data-state=live]")
        page.screenshot(path=str(shots() / "dashboard-queues.png"), full_page=True)  # type: ignore[operator]


def test_widget_and_polling_fallback(server: tuple[str, JobQueue], page: Any) -> None:
    base, _queue = server
    handle = Steps.perform_later(steps=10, delay=0.1)
    # The embeddable widget on a page of "your application" (same origin as the dashboard).
    page.goto(f"{base.removesuffix('/jobs')}/my-app?job={handle.id}")
    page.wait_for_function(
        "() => document.querySelector('activejob-progress').getAttribute('status') === 'completed'",
        timeout=30_000)
    # With the WebSocket gone, the dashboard falls back to polling the REST API.
    page.route("**/api/ws", lambda route: route.abort())
    page.add_init_script("window.WebSocket = function () { throw new Error('no websockets here'); };")
    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=polling]")
    later = Quick.perform_later(value="polled")
    page.locator(f'tr[data-job-id="{later.id}"]').wait_for()


def test_the_widget_polls_while_the_websocket_is_down(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    page.add_init_script("window.WebSocket = function () { throw new Error('no websockets here'); };")
    # Held on a paused queue until the widget polls: on a slow machine the job (half a
    # second) could finish before the page loaded, and a finished job's widget follows nothing.
    queue.pause_queue("widget")
    handle = Steps.set(queue="widget").perform_later(steps=5, delay=0.1)
    page.goto(f"{base.removesuffix('/jobs')}/my-app?job={handle.id}")
    widget = f"#job-{handle.id}"
    page.wait_for_function(f"() => document.querySelector('{widget}').getAttribute('connection') === 'polling'")
    queue.resume_queue("widget")
    page.wait_for_function(f"() => document.querySelector('{widget}').getAttribute('status') === 'completed'",
                           timeout=30_000)
    assert page.locator(widget).get_attribute("connection") is None  # finished: it follows nothing now
    assert "5 of 5" in page.locator(widget).evaluate("w => w.shadowRoot.querySelector('.count').textContent")


def test_live_progress_keeps_its_separator(server: tuple[str, JobQueue], page: Any) -> None:
    base, _queue = server
    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=live]")
    handle = Steps.perform_later(steps=30, delay=0.2)
    cell = f'tr[data-job-id="{handle.id}"] .progress-sub'
    page.wait_for_function(
        f"() => {{ const c = document.querySelector('{cell} [data-count]');"
        " return c && / of 30$/.test(c.textContent); }")
    text = " ".join(page.locator(cell).inner_text().split())
    assert re.search(r"\d+ of 30 · batch \d+", text), text
    page.goto(f"{base}/jobs/{handle.id}")
    page.wait_for_selector("#conn[data-state=live]")
    page.wait_for_function("() => /of 30/.test(document.querySelector('#progress-card [data-count]').textContent)")
    text = " ".join(page.locator("#progress-card .progress-line").inner_text().split())
    assert re.search(r"\d+ of 30 · batch \d+", text), text


def test_toasts_name_jobs_by_their_label_on_every_page(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    handle = Wait.perform_later(seconds=60)
    wait_for(lambda: queue.get_job(handle.id).status == "running", what="the job to start")  # type: ignore[union-attr]
    page.goto(f"{base}/jobs/{handle.id}")
    page.click("[data-watch]")
    page.goto(f"{base}/queues")  # no row of the job here: the toast used to fall back to its name
    page.wait_for_selector("#conn[data-state=live]")
    queue.cancel(handle.id)
    toast = page.locator(".toast-warn .toast-title").first
    toast.wait_for(timeout=30_000)
    assert toast.inner_text() == f"Wait until cancelled #{handle.id} cancelled"


def test_usable_on_a_phone(server: tuple[str, JobQueue], browser: Any) -> None:
    base, _queue = server
    Quick.set(owner="alice").perform_later(value={"greeting": "hello"})
    Steps.set(wait=3600).perform_later(steps=3, dataset="nightly")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        pg = context.new_page()
        for path in ("/", "/queues"):
            pg.goto(base + path)
            pg.wait_for_selector("#conn[data-state=live]")
            assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), path
            assert pg.evaluate("() => document.body.scrollWidth <= window.innerWidth"), path
            # The nav stays one line high (it scrolls sideways if it must), inside the top bar.
            nav = pg.evaluate("""() => { const n = document.querySelector('.nav'), links = [...n.querySelectorAll('a')];
                return { tops: links.map(a => a.getBoundingClientRect().top), height: n.getBoundingClientRect().height,
                         bar: document.querySelector('.topbar-inner').getBoundingClientRect().height }; }""")
            assert len(set(round(t) for t in nav["tops"])) == 1, nav
            assert nav["height"] <= nav["bar"], nav
        # The job table scrolls inside its card instead of being cut off.
        pg.goto(base + "/")
        scroll = pg.evaluate("""() => { const c = document.querySelector('.table-card');
            return { style: getComputedStyle(c).overflowX, wide: c.scrollWidth > c.clientWidth }; }""")
        assert scroll["style"] in ("auto", "scroll"), scroll
    finally:
        context.close()


def test_a_retrying_job_shows_no_stale_progress(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server

    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=live]")
    handle = Flaky.perform_later()
    cell = f'tr[data-job-id="{handle.id}"] .progress-cell'
    page.wait_for_function(f"() => /25 of 80/.test(document.querySelector('{cell}')?.textContent || '')")
    page.wait_for_selector(f'tr[data-job-id="{handle.id}"][data-status=pending]', timeout=15_000)
    text = page.locator(cell).inner_text()
    assert "25 of 80" not in text and "sleeping" not in text and "31%" not in text, text
    page.goto(f"{base}/jobs/{handle.id}")
    page.wait_for_selector("#conn[data-state=live]")
    card = page.locator("#progress-card").inner_text()
    assert "25 of 80" not in card and "sleeping" not in card and "Not started yet" in card, card
    assert queue.get_job(handle.id).attempts == 1  # type: ignore[union-attr]


def test_run_now_on_the_schedules_page_opens_the_job_it_enqueued(server: tuple[str, JobQueue], page: Any) -> None:
    base, queue = server
    activejob.recurring("0 3 * * *", Quick, args={"value": "from the schedule"}, key="browser-nightly")
    page.goto(base + "/schedules")
    page.click('form[data-run-schedule="browser-nightly"] button')
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector(".job-head [data-status-badge]:text('completed')", timeout=30_000)
    info = queue.get_job(job_id)
    assert info is not None and (info.name, info.args, info.unique_key) == (
        "web_quick", {"value": "from the schedule"}, None)
