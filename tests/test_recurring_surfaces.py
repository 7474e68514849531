"""Schedules as people and scripts see them: `activejob cron`, `GET /api/schedules` and the
dashboard's Schedules page, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job, recurring
from activejob.web import create_app

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
SLOT = "2030-01-02T02:00:00+00:00"


class CleanupArgs(BaseModel):
    days: int


@job("surface_cleanup", schema=CleanupArgs)
class Cleanup(BaseJob[CleanupArgs]):
    def perform(self, args: CleanupArgs) -> None: ...


NIGHTLY = {"key": "nightly", "job": "surface_cleanup", "cron": "0 3 * * *", "args": {"days": 30},
           "timezone": "Europe/Rome", "catch_up": "latest"}

APP = """
    import activejob
    from pydantic import BaseModel
    from activejob import BaseJob, job

    class CleanupArgs(BaseModel):
        days: int

    @job("surface_cleanup", schema=CleanupArgs)
    class Cleanup(BaseJob[CleanupArgs]):
        def perform(self, args: CleanupArgs) -> None: ...

    activejob.recurring("*/15 * * * *", Cleanup, args={{"days": 1}}, key="quarter-hourly")
    activejob.configure({url!r}, recurring=[{entry!r}])
"""


@pytest.fixture(autouse=True)
def _forget_the_queue() -> Iterator[None]:
    # Each test configures its own queue (the schedules are reset by conftest's snapshot).
    yield
    JobQueue.reset()


@pytest.fixture
def queue(db_url: str) -> JobQueue:
    """A queue that declares `nightly`, whose slot at SLOT is enqueued already."""
    q = activejob.configure(db_url, recurring=[NIGHTLY])
    Cleanup.set(unique_key=f"cron:nightly:{SLOT}", wait_until=datetime.fromisoformat(SLOT)).perform_later(days=30)
    return q


def cron(tmp_path: Path, url: str, entry: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "cron_app.py").write_text(textwrap.dedent(APP.format(url=url, entry=entry)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "activejob", "cron", "--import", "cron_app", "--database-url", url,
                           *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def test_cron_lists_code_and_settings_schedules_as_json(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    done = cron(tmp_path, db_url, NIGHTLY, "--json")
    assert done.returncode == 0, done.stderr
    nightly, quarter = json.loads(done.stdout)
    assert (quarter["key"], quarter["source"], quarter["last_enqueued"]) == ("quarter-hourly", "code", None)
    assert {k: nightly[k] for k in ("key", "job", "cron", "timezone", "catch_up", "source", "last_enqueued",
                                    "last_status")} == {
        "key": "nightly", "job": "surface_cleanup", "cron": "0 3 * * *", "timezone": "Europe/Rome",
        "catch_up": "latest", "source": "settings", "last_enqueued": SLOT, "last_status": "pending"}
    assert datetime.fromisoformat(nightly["next_run"]) > datetime.now(UTC)


def test_cron_prints_a_table_by_default(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    done = cron(tmp_path, db_url, NIGHTLY)
    assert done.returncode == 0, done.stderr
    header, first, second = done.stdout.splitlines()
    assert header.split()[:4] == ["key", "job", "cron", "timezone"]
    assert first.split()[0] == "nightly" and "2030-01-02 02:00:00" in first and "pending" in first
    assert second.split()[0] == "quarter-hourly"


def test_cron_reports_an_unknown_job_name_and_exits_1(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    done = cron(tmp_path, db_url, {**NIGHTLY, "job": "surface_nobody"}, "--json")
    assert done.returncode == 1
    assert "Error: schedule 'nightly': no job type named 'surface_nobody' is registered" in done.stderr
    assert [s["key"] for s in json.loads(done.stdout)] == ["nightly", "quarter-hourly"]


@pytest.fixture
def client(queue: JobQueue) -> Iterator[TestClient]:
    with TestClient(create_app(queue), base_url="http://localhost") as c:
        yield c


def test_api_lists_the_schedules(client: TestClient) -> None:
    recurring("*/15 * * * *", Cleanup, args={"days": 1}, key="quarter-hourly")
    response = client.get("/api/schedules")
    assert response.status_code == 200
    nightly, quarter = response.json()["schedules"]
    assert (nightly["key"], nightly["last_enqueued"], nightly["last_status"]) == ("nightly", SLOT, "pending")
    assert (quarter["key"], quarter["source"], quarter["error"]) == ("quarter-hourly", "code", None)


def test_api_schedules_is_described_in_openapi(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    operation = spec["paths"]["/api/schedules"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/ScheduleList")
    assert "last_enqueued" in spec["components"]["schemas"]["ScheduleList"]["properties"]["schedules"]["items"][
        "properties"]


def test_the_schedules_page_shows_each_schedule(queue: JobQueue, client: TestClient) -> None:
    page = client.get("/schedules", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert '<tr data-schedule="nightly">' in page.text
    assert "<code>0 3 * * *</code>" in page.text and "Europe/Rome" in page.text
    (slot_job,) = queue.list_jobs(name="surface_cleanup")
    assert f'href="/jobs/{slot_job.id}"' in page.text  # the last slot's job, one click away
    assert 'href="/schedules" class="active"' in page.text


def test_the_schedules_page_shows_why_a_schedule_cannot_run(db_url: str) -> None:
    queue = activejob.configure(db_url, recurring=[{**NIGHTLY, "job": "surface_nobody"}])
    with TestClient(create_app(queue), base_url="http://localhost") as client:
        page = client.get("/schedules", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "no job type named &#39;surface_nobody&#39; is registered" in page.text


def test_every_page_links_to_the_schedules(client: TestClient) -> None:
    assert 'href="/schedules"' in client.get("/queues", headers={"accept": "text/html"}).text


def test_a_worker_command_keeps_the_schedules_its_module_declared(db_url: str, tmp_path: Path) -> None:
    from runner_support import wait_for

    every_minute = {"key": "every-minute", "job": "surface_cleanup", "cron": "* * * * *", "args": {"days": 1}}
    (tmp_path / "cron_app.py").write_text(textwrap.dedent(APP.format(url=db_url, entry=every_minute)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    worker = subprocess.Popen([sys.executable, "-m", "activejob", "worker", "--import", "cron_app", "--database-url",
                               db_url, "--poll-interval", "0.1"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        queue = JobQueue(db_url)
        keys = wait_for(lambda: [j.unique_key or "" for j in queue.list_jobs(name="surface_cleanup")
                                 if (j.unique_key or "").startswith("cron:every-minute:")], timeout=20)
        queue.close()
    finally:
        worker.kill()
        worker.wait(timeout=10)
    assert len(keys) == 1
