"""Running a cron schedule's job now: `queue.run_schedule(key)`, `activejob cron --run KEY`,
`POST /api/schedules/{key}/run` and the Schedules page's Run now button."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job, recurring
from activejob.errors import ConfigurationError, UnknownScheduleError
from activejob.web import create_app

from .conftest import ROOT, TestClient, csrf_headers


class Days(BaseModel):
    days: int


@job("rs_cleanup", schema=Days)
class Cleanup(BaseJob[Days]):
    def perform(self, args: Days) -> int:
        return args.days


@job("rs_only_one", schema=Days, unique_key=lambda args: "rs-only-one", unique_mode="raise")
class OnlyOne(BaseJob[Days]):
    def perform(self, args: Days) -> None: ...


NIGHTLY = {"key": "nightly", "job": "rs_cleanup", "cron": "0 3 * * *", "args": {"days": 30}, "queue": "chores",
           "priority": 5}


@pytest.fixture
def queue(db_url: str) -> Iterator[JobQueue]:
    yield activejob.configure(db_url, recurring=[NIGHTLY])
    JobQueue.reset()


def test_run_schedule_enqueues_its_job_now_with_its_args_queue_and_priority(queue: JobQueue) -> None:
    handle = queue.run_schedule("nightly")
    info = handle.info()
    assert (info.name, info.args, info.queue, info.priority, info.status) == (
        "rs_cleanup", {"days": 30}, "chores", 5, "pending")
    assert info.run_at <= info.created_at, "due now"
    assert info.unique_key is None, "beside the slots, not one of them"


def test_the_job_run_now_runs_and_the_slots_go_on(queue: JobQueue) -> None:
    handle = queue.run_schedule("nightly")
    queue.run_until_idle()
    assert (handle.info().status, handle.info().result) == ("completed", 30)
    (nightly,) = queue.recurring()
    assert nightly["last_enqueued"] is not None, "the worker still keeps the next slot enqueued"


def test_a_schedule_registered_in_code_runs_too(queue: JobQueue) -> None:
    recurring("*/15 * * * *", Cleanup, args={"days": 1}, key="quarter-hourly")
    assert queue.run_schedule("quarter-hourly").info().args == {"days": 1}


def test_an_unknown_key_names_the_known_ones(queue: JobQueue) -> None:
    known = "no cron schedule has the key 'nightlly'; the schedules are: nightly"
    with pytest.raises(UnknownScheduleError, match=known):
        queue.run_schedule("nightlly")
    assert queue.list_jobs() == []


def test_a_declared_schedule_whose_job_is_not_imported_says_so(db_url: str) -> None:
    queue = activejob.configure(db_url, recurring=[{**NIGHTLY, "job": "rs_nobody"}])
    try:
        with pytest.raises(ConfigurationError, match="schedule 'nightly': no job type named 'rs_nobody'"):
            queue.run_schedule("nightly")
        assert queue.list_jobs() == []
    finally:
        JobQueue.reset()


APP = """
    import activejob
    from pydantic import BaseModel
    from activejob import BaseJob, job

    class Days(BaseModel):
        days: int

    @job("rs_cleanup", schema=Days)
    class Cleanup(BaseJob[Days]):
        def perform(self, args: Days) -> None: ...

    activejob.configure({url!r}, recurring=[{entry!r}])
"""


def cron(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rs_app.py").write_text(textwrap.dedent(APP.format(url=url, entry=NIGHTLY)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "activejob", "cron", "--import", "rs_app", "--database-url", url,
                           *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)


def test_cron_run_enqueues_the_schedule_s_job_and_prints_its_id(queue: JobQueue, db_url: str,
                                                                tmp_path: Path) -> None:
    queue.stats()  # the tables, for the command (which never migrates)
    done = cron(tmp_path, db_url, "--run", "nightly")
    assert done.returncode == 0, done.stderr
    (found,) = queue.list_jobs()
    assert done.stdout.strip() == f"job {found.id} (rs_cleanup) enqueued now for schedule 'nightly'"
    assert (found.args, found.queue) == ({"days": 30}, "chores")


def test_cron_run_of_an_unknown_key_is_one_line_and_exit_1(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    queue.stats()
    done = cron(tmp_path, db_url, "--run", "weekly")
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: no cron schedule has the key 'weekly'; the schedules are: nightly"


def test_cron_follow_needs_run(queue: JobQueue, db_url: str, tmp_path: Path) -> None:
    queue.stats()
    done = cron(tmp_path, db_url, "--follow")
    assert done.returncode == 2 and "give --run too" in done.stderr


@pytest.fixture
def client(queue: JobQueue) -> Iterator[TestClient]:
    with TestClient(create_app(queue)) as c:
        yield c


def test_api_runs_a_schedule_and_answers_with_its_job(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/schedules/nightly/run", headers=csrf_headers(client))
    assert response.status_code == 200, response.text
    shown = response.json()["job"]
    assert (shown["name"], shown["args"], shown["queue"], shown["status"]) == (
        "rs_cleanup", {"days": 30}, "chores", "pending")
    assert [j.id for j in queue.list_jobs()] == [shown["id"]]


def test_api_run_of_an_unknown_schedule_is_404(queue: JobQueue, client: TestClient) -> None:
    response = client.post("/api/schedules/weekly/run", headers=csrf_headers(client))
    assert response.status_code == 404 and "no cron schedule has the key 'weekly'" in response.json()["error"]


def test_api_run_of_a_schedule_that_cannot_run_here_is_409(db_url: str) -> None:
    queue = activejob.configure(db_url, recurring=[{**NIGHTLY, "job": "rs_nobody"}])
    try:
        with TestClient(create_app(queue)) as client:
            response = client.post("/api/schedules/nightly/run", headers=csrf_headers(client))
        assert response.status_code == 409 and "rs_nobody" in response.json()["error"]
    finally:
        JobQueue.reset()


def test_api_run_of_a_schedule_whose_job_is_refused_is_409(queue: JobQueue, client: TestClient) -> None:
    recurring("0 4 * * *", OnlyOne, args={"days": 1}, key="only-one")
    first = client.post("/api/schedules/only-one/run", headers=csrf_headers(client))
    again = client.post("/api/schedules/only-one/run", headers=csrf_headers(client))
    assert first.status_code == 200 and again.status_code == 409, again.text
    assert "rs-only-one" in again.json()["error"]
    assert [j.name for j in queue.list_jobs()] == ["rs_only_one"]


def test_api_run_needs_csrf_proof(queue: JobQueue, client: TestClient) -> None:
    assert client.post("/api/schedules/nightly/run").status_code == 403
    assert queue.list_jobs() == []


def test_the_schedules_page_s_run_now_button_leads_to_the_new_job(queue: JobQueue, client: TestClient) -> None:
    page = client.get("/schedules", headers={"accept": "text/html"}).text
    token = client.cookies.get("activejob_csrf")
    assert 'action="/schedules/nightly/run"' in page and f'name="csrf_token" value="{token}"' in page
    response = client.post("/schedules/nightly/run", data={"csrf_token": token}, follow_redirects=False)
    (found,) = queue.list_jobs()
    assert response.status_code == 303 and response.headers["location"] == f"/jobs/{found.id}"


def test_the_api_description_lists_the_run_endpoint(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    operation = spec["paths"]["/api/schedules/{key}/run"]["post"]
    assert operation["operationId"] == "run_schedule" and {"404", "409"} <= set(operation["responses"])
    assert json.dumps(operation["parameters"]).count('"key"') == 1
