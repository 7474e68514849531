"""Prometheus metrics: the dashboard's `/metrics`, `activejob worker --metrics-port`, and what
they say, read back by parsing the text format as Prometheus would."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
import warnings
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jobs_for_workers as wk
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from runner_support import ROOT, wait_for

import activejob
from activejob import BaseJob, JobQueue, clock, job
from activejob.cli import main
from activejob.metrics import DashboardMetrics, WorkerMetrics
from activejob.web import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient


class Note(BaseModel):
    text: str = ""


@job("mx_ok", schema=Note, max_retries=0, queue="mail")
class Ok(BaseJob[Note]):
    def perform(self, args: Note) -> str:
        self.progress(0.5)  # an event in the log between the start and the end
        return args.text


@job("mx_flaky", schema=Note, max_retries=1, backoff=0)
class Flaky(BaseJob[Note]):
    async def perform(self, args: Note) -> None:
        raise RuntimeError("always")


def samples(text: str | bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition: (name, sorted labels) -> value."""
    if isinstance(text, bytes):
        text = text.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def sqlite_queue(sqlite_url: str) -> Iterator[JobQueue]:
    """The process-wide queue on a SQLite file, for tests with worker processes."""
    yield activejob.configure(sqlite_url, poll_interval=0.05)
    JobQueue.reset()


@pytest.fixture
def worker_metrics(queue: JobQueue) -> Iterator[WorkerMetrics]:
    metrics = WorkerMetrics(queue)
    yield metrics
    metrics.close()


def dashboard(app: Any, **options: Any) -> TestClient:
    # The dashboard answers only the names it is served as: localhost by default.
    return TestClient(app, base_url=options.pop("base_url", "http://localhost"), **options)


# -- the gauges, from the database ------------------------------------------------------


def test_jobs_gauge_counts_jobs_by_queue_and_status(queue: JobQueue, worker_metrics: WorkerMetrics) -> None:
    Ok.perform_later(text="a")
    Ok.perform_later(text="b")
    Flaky.perform_later()
    found = samples(worker_metrics.exposition())
    assert value(found, "activejob_jobs", queue="mail", status="pending") == 2
    assert value(found, "activejob_jobs", queue="default", status="pending") == 1
    assert value(found, "activejob_jobs", queue="mail", status="completed") == 0


def test_oldest_pending_age_is_how_long_the_longest_waiting_due_job_has_waited(
        queue: JobQueue, worker_metrics: WorkerMetrics) -> None:
    Ok.perform_at(clock.now() - timedelta(seconds=30), text="late")
    Ok.perform_at(clock.now() - timedelta(seconds=5), text="later")
    Flaky.perform_in(timedelta(hours=1))  # not due: nobody is late for it
    found = samples(worker_metrics.exposition())
    assert 30 <= (value(found, "activejob_oldest_pending_age_seconds", queue="mail") or 0) < 60
    assert value(found, "activejob_oldest_pending_age_seconds", queue="default") == 0


def test_paused_queues_are_flagged(queue: JobQueue, worker_metrics: WorkerMetrics) -> None:
    Ok.perform_later()
    queue.pause_queue("mail")
    found = samples(worker_metrics.exposition())
    assert value(found, "activejob_queue_paused", queue="mail") == 1


def test_workers_alive_counts_workers_with_a_recent_heartbeat(queue: JobQueue,
                                                             worker_metrics: WorkerMetrics) -> None:
    assert value(samples(worker_metrics.exposition()), "activejob_workers_alive") == 0
    queue.start()
    try:
        wait_for(lambda: value(samples(worker_metrics.exposition()), "activejob_workers_alive") == 1,
                 what="the worker to register")
    finally:
        queue.stop()
    assert value(samples(worker_metrics.exposition()), "activejob_workers_alive") == 0


# -- a worker's counters, from its signals ------------------------------------------------


def test_worker_counts_each_job_type_s_starts_and_outcomes(queue: JobQueue,
                                                           worker_metrics: WorkerMetrics) -> None:
    Ok.perform_later()
    Flaky.perform_later()
    queue.run_until_idle()
    found = samples(worker_metrics.exposition())
    assert value(found, "activejob_jobs_started_total", job_name="mx_ok") == 1
    assert value(found, "activejob_jobs_completed_total", job_name="mx_ok") == 1
    assert value(found, "activejob_jobs_started_total", job_name="mx_flaky") == 2
    assert value(found, "activejob_jobs_retried_total", job_name="mx_flaky") == 1
    assert value(found, "activejob_jobs_failed_total", job_name="mx_flaky") == 1
    assert value(found, "activejob_jobs_completed_total", job_name="mx_flaky") is None


def test_worker_observes_each_attempt_s_duration_per_job_type(queue: JobQueue,
                                                              worker_metrics: WorkerMetrics) -> None:
    Ok.perform_later()
    Flaky.perform_later()
    queue.run_until_idle()
    found = samples(worker_metrics.exposition())
    assert value(found, "activejob_job_duration_seconds_count", job_name="mx_ok") == 1
    assert value(found, "activejob_job_duration_seconds_count", job_name="mx_flaky") == 2
    assert 0 <= (value(found, "activejob_job_duration_seconds_sum", job_name="mx_ok") or -1) < 5
    assert value(found, "activejob_job_duration_seconds_bucket", job_name="mx_ok", le="+Inf") == 1


def test_worker_leaves_out_jobs_it_did_not_start(queue: JobQueue, worker_metrics: WorkerMetrics) -> None:
    other = WorkerMetrics(queue, gauges=False)  # made before: counts only what this queue's worker starts
    try:
        handle = Ok.perform_later()
        queue.cancel(handle.id)  # a status change no worker of ours started
        found = samples(worker_metrics.exposition())
        assert value(found, "activejob_jobs_started_total", job_name="mx_ok") is None
    finally:
        other.close()


def test_worker_stops_counting_once_closed(queue: JobQueue) -> None:
    metrics = WorkerMetrics(queue)
    metrics.close()
    Ok.perform_later()
    queue.run_until_idle()
    assert value(samples(metrics.exposition()), "activejob_jobs_started_total", job_name="mx_ok") is None


def test_worker_command_serves_metrics_on_its_port(sqlite_queue: JobQueue, sqlite_url: str, workers: Any) -> None:
    worker = workers.start(sqlite_url, "--metrics-port", "0")
    port = int(wait_for(lambda: re.search(r"metrics at http://127\.0\.0\.1:(\d+)/metrics", worker.output()),
                        what="the metrics address in the worker's log").group(1))
    wk.WkQuick.perform_later()

    def scraped() -> dict[Any, float] | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            found = samples(response.read())
        return found if value(found, "activejob_jobs_completed_total", job_name="wk_quick") == 1 else None

    found = wait_for(scraped, what="the worker's metrics to count the job")
    assert value(found, "activejob_jobs_started_total", job_name="wk_quick") == 1
    assert value(found, "activejob_job_duration_seconds_count", job_name="wk_quick") == 1
    assert value(found, "activejob_workers_alive") == 1


def test_worker_command_refuses_metrics_port_with_several_processes(sqlite_url: str) -> None:
    result = CliRunner().invoke(main, ["worker", "--database-url", sqlite_url, "--processes", "2",
                                       "--metrics-port", "9100"])
    assert result.exit_code == 2
    assert "--metrics-port serves one process's counters" in result.output


# -- the dashboard's /metrics, from the event log -----------------------------------------


def test_dashboard_counts_what_workers_did_since_it_started(queue: JobQueue) -> None:
    Ok.perform_later()
    queue.run_until_idle()  # before the dashboard started: in the gauges, not in the counters
    with dashboard(create_app(queue)) as client:
        Ok.perform_later()
        Flaky.perform_later()
        queue.run_until_idle()

        def scraped() -> dict[Any, float] | None:
            response = client.get("/metrics")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            found = samples(response.text)
            # Both jobs' last events: either may be the last one in the log.
            done = (value(found, "activejob_jobs_failed_total", job_name="mx_flaky") == 1
                    and value(found, "activejob_jobs_completed_total", job_name="mx_ok") == 1)
            return found if done else None

        found = wait_for(scraped, what="the dashboard to count the jobs")
    assert value(found, "activejob_jobs_started_total", job_name="mx_ok") == 1
    assert value(found, "activejob_jobs_completed_total", job_name="mx_ok") == 1
    assert value(found, "activejob_jobs_started_total", job_name="mx_flaky") == 2
    assert value(found, "activejob_jobs_retried_total", job_name="mx_flaky") == 1
    assert value(found, "activejob_job_duration_seconds_count", job_name="mx_flaky") == 2
    assert value(found, "activejob_job_duration_seconds_count", job_name="mx_ok") == 1
    assert value(found, "activejob_jobs", queue="mail", status="completed") == 2


def test_dashboard_counts_events_of_worker_processes(sqlite_queue: JobQueue, sqlite_url: str,
                                                     workers: Any) -> None:
    with dashboard(create_app(sqlite_queue)) as client:
        workers.start(sqlite_url)
        wk.WkQuick.perform_later()

        def scraped() -> dict[Any, float] | None:
            found = samples(client.get("/metrics").text)
            return found if value(found, "activejob_jobs_completed_total", job_name="wk_quick") == 1 else None

        found = wait_for(scraped, what="the dashboard to count the worker's job")
    assert value(found, "activejob_workers_alive") == 1
    assert value(found, "activejob_job_duration_seconds_count", job_name="wk_quick") == 1


def test_dashboard_metrics_take_the_counts_the_pages_share(queue: JobQueue) -> None:
    from activejob.web.shared_reads import SharedReads

    ticks = [0.0]

    def clock() -> float:  # a second passes at each look: every count "takes" one, as on a big table
        ticks[0] += 1.0
        return ticks[0]

    app = create_app(queue)
    app.state.activejob.reads = SharedReads(costly=0.5, reuse=1000.0, clock=clock)
    with dashboard(app) as client:
        Ok.perform_later()
        assert client.get("/api/stats").json()["pending"] == 1
        Ok.perform_later()

        shared = samples(client.get("/metrics").text)  # the viewers' count, not a second one
        ticks[0] += 10_000.0
        fresh = samples(client.get("/metrics").text)

    assert value(shared, "activejob_jobs", queue="mail", status="pending") == 1
    assert value(fresh, "activejob_jobs", queue="mail", status="pending") == 2


def test_dashboard_metrics_need_the_token_when_one_is_set(queue: JobQueue) -> None:
    with dashboard(create_app(queue, token="s3cret")) as client:
        assert client.get("/metrics").status_code == 401
        response = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200
    assert value(samples(response.text), "activejob_workers_alive") == 0


def test_dashboard_metrics_answer_only_the_hosts_it_is_served_as(queue: JobQueue) -> None:
    with dashboard(create_app(queue), base_url="http://evil.example") as client:
        assert client.get("/metrics").status_code == 400


def test_dashboard_mounted_in_an_app_counts_from_the_first_scrape(queue: JobQueue) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    # A mounted app's lifespan never runs: the first scrape starts the counting.
    host = Starlette(routes=[Mount("/jobs", create_app(queue))])
    with dashboard(host) as client:
        assert client.get("/jobs/metrics").status_code == 200
        Ok.perform_later()
        queue.run_until_idle()
        wait_for(lambda: value(samples(client.get("/jobs/metrics").text), "activejob_jobs_completed_total",
                               job_name="mx_ok") == 1, what="the dashboard to count the job")


def test_every_metric_name_starts_with_activejob(queue: JobQueue, worker_metrics: WorkerMetrics) -> None:
    Ok.perform_later()
    queue.run_until_idle()
    dash = DashboardMetrics(queue, relay=None)  # type: ignore[arg-type]  # only exposition() is used
    for text in (worker_metrics.exposition(), dash.exposition()):
        names = {family.name for family in text_string_to_metric_families(text.decode())}
        assert names and all(name.startswith("activejob_") for name in names), names


def test_dashboard_without_prometheus_client_says_how_to_get_it(sqlite_url: str) -> None:
    script = f"""
import sys, warnings
sys.modules["prometheus_client"] = None  # not installed
warnings.simplefilter("ignore")
from starlette.testclient import TestClient
from activejob import JobQueue
from activejob.web import create_app
client = TestClient(create_app(JobQueue({sqlite_url!r})), base_url="http://localhost")
response = client.get("/metrics")
print(response.status_code, response.text)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("501 ") and "pip install 'activejob[metrics]'" in out.stdout

