"""The counts of the pages and of /api/stats go through the dashboard's shared reads
(`web/shared_reads.py`): fresh on a small table, kept a while when counting is costly."""

from __future__ import annotations

from activejob import JobQueue
from activejob.web.shared_reads import SharedReads

from .conftest import TestClient
from .jobs import Steps


def test_counts_of_a_small_table_show_each_change_at_once(queue: JobQueue, client: TestClient) -> None:
    ticks = [0.0]

    def clock() -> float:  # a millisecond passes at each look: every read is cheap, however loaded the machine
        ticks[0] += 0.001
        return ticks[0]

    client.app.state.activejob.reads = SharedReads(clock=clock)
    assert client.get("/api/stats").json()["pending"] == 0
    Steps.perform_later(steps=1)
    assert client.get("/api/stats").json()["pending"] == 1
    Steps.perform_later(steps=1)
    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200 and "web_steps" in page.text
    assert client.get("/api/stats").json()["pending"] == 2


def test_counts_that_cost_enough_serve_every_viewer_until_stale(queue: JobQueue, client: TestClient) -> None:
    ticks = [0.0]

    def clock() -> float:  # a second passes at each look: every read "takes" one
        ticks[0] += 1.0
        return ticks[0]

    # As on a table of millions: every count is costly, and kept 1,000 times what it took.
    client.app.state.activejob.reads = SharedReads(costly=0.5, reuse=1000.0, clock=clock)
    assert client.get("/api/stats").json()["pending"] == 0
    Steps.perform_later(steps=1)
    assert client.get("/api/stats").json()["pending"] == 0  # the kept counts, for everyone
    page = client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200 and "web_steps" in page.text  # the list itself is read afresh
    ticks[0] += 1000.0
    assert client.get("/api/stats").json()["pending"] == 1
