"""The bulk actions in real headless Chromium: select and delete, retry all failed."""

from __future__ import annotations

from typing import Any

import pytest
from runner_support import wait_for

from activejob import JobQueue

from .jobs import Fail, Quick
from .test_browser import browser, page, server  # noqa: F401  (the browser tests' fixtures)

pytestmark = pytest.mark.browser


def test_delete_the_selected_jobs_after_confirming(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, queue = server
    done = [Quick.perform_later(value=n) for n in range(3)]
    wait_for(lambda: all(h.status == "completed" for h in done), what="the jobs to complete")
    page.goto(base + "/")
    page.wait_for_selector("#conn[data-state=live]")
    for h in done[:2]:
        page.check(f'tr[data-job-id="{h.id}"] input[data-select]')
    assert page.locator("[data-selected-count]").inner_text() == "2 selected"
    questions: list[str] = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.click("button[data-bulk=delete]")
    page.wait_for_selector(".toast-info:has-text('Deleted 2 jobs')")
    assert questions and "Delete 2 selected jobs" in questions[0]
    page.wait_for_selector(f'tr[data-job-id="{done[0].id}"]', state="detached")
    assert [queue.get_job(h.id) is None for h in done] == [True, True, False]


def test_retry_all_failed_honours_the_search(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, queue = server
    wanted = [Fail.perform_later(message="timeout talking to the bank") for _ in range(2)]
    other = Fail.perform_later(message="bad card")
    wait_for(lambda: all(h.status == "failed" for h in [*wanted, other]), what="the jobs to fail")
    queue.pause_queue("default")  # retried jobs stay pending, so the test sees them
    page.goto(base + "/?status=failed&q=timeout")
    button = page.locator("button[data-bulk=retry-failed]")
    assert button.inner_text() == "Retry all 2 failed matching"
    page.once("dialog", lambda d: d.accept())
    button.click()
    page.wait_for_selector(".toast-info:has-text('2 failed jobs will run again')")
    assert [h.status for h in wanted] == ["pending", "pending"]
    assert other.status == "failed"


def test_nothing_happens_when_the_confirm_is_dismissed(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, queue = server
    queue.pause_queue("held")
    pending = Quick.set(queue="held").perform_later(value=1)
    page.goto(base + "/")
    page.check(f'tr[data-job-id="{pending.id}"] input[data-select]')
    page.once("dialog", lambda d: d.dismiss())
    page.click("button[data-bulk=cancel]")
    page.wait_for_timeout(300)
    assert queue.get_job(pending.id).status == "pending"  # type: ignore[union-attr]
