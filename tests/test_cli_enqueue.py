"""`activejob enqueue`: a job from the shell, checked by its type as perform_later checks it.

The command runs as a subprocess, importing this module for its job types; the test reads
what it wrote through a JobQueue of its own on the same SQLite file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job

if TYPE_CHECKING:  # (worker subprocesses import this module for its job types, without the tests' path)
    from runner_support import Workers

ROOT = Path(__file__).resolve().parents[1]
MODULE = "tests.test_cli_enqueue"


class Mail(BaseModel):
    to: str
    copies: int = 1


@job("cle_mail", schema=Mail, queue="mail")
class SendMail(BaseJob[Mail]):
    def perform(self, args: Mail) -> str:
        return f"sent to {args.to}"


@job("cle_bounce", schema=Mail, max_retries=0)
class Bounces(BaseJob[Mail]):
    def perform(self, args: Mail) -> None:
        raise RuntimeError(f"{args.to} bounced")


@job("cle_once", schema=Mail, unique_key=lambda args: args.to)
class Once(BaseJob[Mail]):
    def perform(self, args: Mail) -> None: ...


def enqueue(url: str, *args: str, stdin: str | None = None, imports: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "activejob", "enqueue", *args, "--database-url", url]
    if imports:
        argv += ["--import", MODULE]
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120, input=stdin)


@pytest.fixture
def queue(sqlite_url: str) -> JobQueue:
    q = activejob.configure(sqlite_url)
    q.stats()  # makes the file and its tables, as `activejob db upgrade` would
    yield q  # type: ignore[misc]
    JobQueue.reset()


def test_enqueue_writes_the_job_with_its_arguments_and_prints_its_id(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", '{"to": "a@example.com"}')
    assert out.returncode == 0, out.stderr
    (found,) = queue.list_jobs()
    assert (found.name, found.queue, found.status, found.args) == (
        "cle_mail", "mail", "pending", {"to": "a@example.com", "copies": 1})
    assert out.stdout.strip() == f"job {found.id} (cle_mail) on queue 'mail': pending"


def test_enqueued_job_runs_on_a_worker(queue: JobQueue, sqlite_url: str) -> None:
    assert enqueue(sqlite_url, "cle_mail", '{"to": "b@example.com"}').returncode == 0
    queue.run_until_idle()
    (done,) = queue.list_jobs()
    assert (done.status, done.result) == ("completed", "sent to b@example.com")


def test_enqueue_reads_the_arguments_from_stdin(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", "-", stdin='{"to": "c@example.com", "copies": 2}')
    assert out.returncode == 0, out.stderr
    assert queue.list_jobs()[0].args == {"to": "c@example.com", "copies": 2}


def test_enqueue_takes_queue_priority_and_a_delay(queue: JobQueue, sqlite_url: str) -> None:
    before = datetime.now(UTC)
    out = enqueue(sqlite_url, "cle_mail", '{"to": "d@example.com"}', "--queue", "urgent", "--priority", "7",
                  "--wait", "3600", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    (found,) = queue.list_jobs()
    assert shown["id"] == found.id and (found.queue, found.priority) == ("urgent", 7)
    assert before + timedelta(minutes=59) < found.run_at < before + timedelta(minutes=61)


def test_enqueue_at_a_time_without_an_offset_is_utc(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", '{"to": "e@example.com"}', "--at", "2030-01-02T03:04:05")
    assert out.returncode == 0, out.stderr
    assert queue.list_jobs()[0].run_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert "runs at 2030-01-02 03:04:05 UTC" in out.stdout


def test_invalid_arguments_name_the_job_and_field_and_write_nothing(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", '{"to": "f@example.com", "copies": "many"}')
    assert out.returncode == 1
    assert "cle_mail" in out.stderr and "copies" in out.stderr and "Traceback" not in out.stderr
    assert queue.list_jobs() == []


@pytest.mark.parametrize(("given", "says"), [
    ("{to}", "not JSON"),
    ("[1, 2]", "JSON object"),
])
def test_arguments_that_are_not_a_json_object_are_refused(queue: JobQueue, sqlite_url: str, given: str,
                                                          says: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", given)
    assert out.returncode == 2 and says in out.stderr and "ARGS" in out.stderr
    assert queue.list_jobs() == []


def test_bad_options_are_refused_before_anything_is_written(queue: JobQueue, sqlite_url: str) -> None:
    assert "pick one" in enqueue(sqlite_url, "cle_mail", '{"to": "g@x"}', "--wait", "5", "--at", "2030-01-01").stderr
    assert "ISO 8601" in enqueue(sqlite_url, "cle_mail", '{"to": "g@x"}', "--at", "tomorrow").stderr
    priority = enqueue(sqlite_url, "cle_mail", '{"to": "g@x"}', "--priority", str(2**40))
    assert priority.returncode == 1 and "cle_mail: priority" in priority.stderr
    assert queue.list_jobs() == []


def test_an_unknown_job_type_suggests_the_close_one(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mial", "{}")
    assert out.returncode == 1 and "did you mean 'cle_mail'" in out.stderr


def test_a_job_type_not_imported_asks_for_its_module(queue: JobQueue, sqlite_url: str) -> None:
    out = enqueue(sqlite_url, "cle_mail", "{}", imports=False)
    assert out.returncode == 1 and "--import" in out.stderr


def test_a_held_unique_key_gives_the_holder_and_writes_no_job(queue: JobQueue, sqlite_url: str) -> None:
    first = enqueue(sqlite_url, "cle_once", '{"to": "h@example.com"}')
    again = enqueue(sqlite_url, "cle_once", '{"to": "h@example.com"}')
    assert first.returncode == again.returncode == 0, again.stderr
    (holder,) = queue.list_jobs()
    assert f"job {holder.id} (cle_once) already held its unique key" in again.stdout


def test_json_says_whether_the_job_is_new(queue: JobQueue, sqlite_url: str) -> None:
    first = json.loads(enqueue(sqlite_url, "cle_once", '{"to": "l@example.com"}', "--json").stdout)
    again = json.loads(enqueue(sqlite_url, "cle_once", '{"to": "l@example.com"}', "--json").stdout)
    assert (first["enqueued"], again["enqueued"]) == (True, False)
    assert first["id"] == again["id"] and first["unique_key"] == "l@example.com"


def test_follow_prints_the_events_and_exits_0_once_a_worker_completed_it(queue: JobQueue, sqlite_url: str,
                                                                         workers: Workers) -> None:
    workers.start(sqlite_url, imports=MODULE)
    out = enqueue(sqlite_url, "cle_mail", '{"to": "j@example.com"}', "--follow", "--interval", "0.1")
    assert out.returncode == 0, out.stderr
    (found,) = queue.list_jobs()
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"job {found.id} (cle_mail) on queue 'mail': ")  # pending, or running already
    assert any("started" in line for line in lines) and lines[-1] == f"job {found.id} completed"


def test_follow_exits_1_when_the_job_fails(queue: JobQueue, sqlite_url: str, workers: Workers) -> None:
    workers.start(sqlite_url, imports=MODULE)
    out = enqueue(sqlite_url, "cle_bounce", '{"to": "k@example.com"}', "--follow", "--interval", "0.1")
    assert out.returncode == 1
    assert out.stdout.splitlines()[-1].endswith("failed: RuntimeError: k@example.com bounced")


def test_enqueue_does_not_create_a_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing.db"
    out = enqueue(url, "cle_mail", '{"to": "i@example.com"}')
    assert out.returncode == 1 and "no SQLite database" in out.stderr
    assert not (tmp_path / "missing.db").exists()
