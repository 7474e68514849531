"""The queues page's charts in real headless Chromium, drawn from real events."""

from __future__ import annotations

from typing import Any

import pytest
from runner_support import wait_for

from activejob import JobQueue

from .jobs import Fail, Quick
from .test_browser import browser, page, server  # noqa: F401  (the browser tests' fixtures)

pytestmark = pytest.mark.browser


def test_the_finished_chart_draws_the_jobs_that_finished(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, _queue = server
    done = [Quick.perform_later(value=n) for n in range(3)]
    broken = Fail.perform_later(message="kaput")
    wait_for(lambda: all(h.status == "completed" for h in done) and broken.status == "failed",
             what="the jobs to finish")
    page.goto(f"{base}/queues")
    page.wait_for_selector("[data-chart=finished] g[data-total]")
    totals = page.eval_on_selector_all("[data-chart=finished] g[data-total]",
                                       "gs => gs.map(g => +g.dataset.total)")
    assert sum(totals) == 4
    assert page.locator("[data-chart=finished] rect.fill-failed").count() >= 1
    assert page.locator("[data-legend=finished] .legend-item").all_inner_texts() == ["completed", "failed", "cancelled"]


def test_the_depth_chart_follows_a_paused_queue_live(server: tuple[str, JobQueue], page: Any) -> None:  # noqa: F811
    base, queue = server
    queue.pause_queue("held")
    page.goto(f"{base}/queues")
    page.wait_for_selector("#charts[data-loaded]")
    for n in range(3):
        Quick.set(queue="held").perform_later(value=n)
    # Their events redraw the charts: the held queue's line appears, ending at 3 pending jobs.
    line = page.locator('[data-chart=depth] polyline[data-queue="held"]')
    line.wait_for(timeout=4_000)
    assert line.locator("title").text_content() == "held: 3 now"
    assert "held" in page.locator("[data-legend=depth]").inner_text()
