"""`@job(rate_limit=...)`, `rate_limit_key=` and the `queue_rate_limits` setting: at most N
starts in any window of the limit's length, over every worker; held-back jobs stay pending
and do not hold back other types."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel
from runner_support import Workers, sql, wait_for

import activejob
from activejob import BaseJob, ConfigurationError, JobQueue, job
from activejob.definition import registry


class Item(BaseModel):
    n: int = 0
    key: str = ""


@pytest.fixture
def types() -> Iterator[list[str]]:
    """Names of the job types a test defines, unregistered after it (a rate-limited type in the
    registry would send every later in-process worker through the general claim)."""
    names: list[str] = []
    yield names
    for name in names:
        registry.remove(name)


def define(types: list[str], name: str, **options: Any) -> type[BaseJob[Item]]:
    @job(name, schema=Item, max_retries=0, **options)
    class Defined(BaseJob[Item]):
        async def perform(self, args: Item) -> None: ...

    types.append(name)
    return Defined


def most_in_any_window(starts: Sequence[datetime], window: timedelta) -> int:
    ordered = sorted(starts)
    return max((sum(1 for s in ordered if first <= s < first + window) for first in ordered), default=0)


def test_a_rate_limit_that_cannot_be_read_is_refused_naming_the_job() -> None:
    with pytest.raises(ConfigurationError, match="bad_rate: rate_limit must be like '10/s'"):
        job("bad_rate", rate_limit="ten a second")


def test_a_rate_limit_key_without_a_rate_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="bad_key: rate_limit_key .* needs rate_limit"):
        job("bad_key", rate_limit_key=lambda args: args.key)


def test_a_queue_rate_limit_that_cannot_be_read_is_refused_naming_the_queue(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="queue_rate_limits: the limit of 'mail'"):
        activejob.configure(f"sqlite:///{tmp_path / 'q.db'}", queue_rate_limits={"mail": "lots"})


def test_the_rate_limit_is_part_of_the_job_types_description(types: list[str]) -> None:
    described = define(types, "described_rate", rate_limit=(600, timedelta(minutes=1)),
                       rate_limit_key=lambda args: args.key).options.describe()
    assert (described["rate_limit"], described["rate_limit_per_key"]) == ("600/m", True)


def test_a_worker_starts_no_more_than_the_limit_in_any_window(db_url: str, types: list[str]) -> None:
    Limited = define(types, "limited_rate", rate_limit="3/0.4s")
    queue = activejob.configure(db_url, concurrency=8, poll_interval=1.0)
    try:
        handles = Limited.perform_all_later([{"n": n} for n in range(7)])
        queue.run_until_idle()  # waits for the window to free, not for the poll interval
        assert all(h.status == "completed" for h in handles)
        starts = [h.info().started_at for h in handles]
        assert most_in_any_window(starts, timedelta(seconds=0.4)) == 3
        assert max(starts) - min(starts) < timedelta(seconds=2.5)
    finally:
        JobQueue.reset()


def test_held_back_jobs_start_as_the_window_slides_under_a_frozen_clock(db_url: str, types: list[str]) -> None:
    Limited = define(types, "frozen_rate", rate_limit="2/m")
    with freeze_time("2030-01-01 12:00:00") as frozen:
        queue = activejob.configure(db_url, concurrency=8, poll_interval=0.05)
        try:
            handles = Limited.perform_all_later([{"n": n} for n in range(5)])
            done = []
            for step in (0, 30, 30, 1):  # at 0 s, 30 s, 60 s, 61 s
                frozen.tick(timedelta(seconds=step))
                queue.run_until_idle()  # returns: the frozen clock never frees the window
                done.append(sum(h.status == "completed" for h in handles))
            assert done == [2, 2, 4, 4]
            frozen.tick(timedelta(seconds=59))
            queue.run_until_idle()
            assert all(h.status == "completed" for h in handles)
        finally:
            JobQueue.reset()


def test_each_rate_key_is_limited_on_its_own(db_url: str, types: list[str]) -> None:
    Keyed = define(types, "keyed_rate", rate_limit="1/0.5s", rate_limit_key=lambda args: args.key)
    queue = activejob.configure(db_url, concurrency=8, poll_interval=1.0)
    try:
        handles = Keyed.perform_all_later([{"key": k} for k in "abab"])
        queue.run_until_idle()
        by_key = {k: [h.info().started_at for h in handles if h.info().args["key"] == k] for k in "ab"}
        assert all(most_in_any_window(s, timedelta(seconds=0.5)) == 1 for s in by_key.values())
        assert abs(by_key["a"][0] - by_key["b"][0]) < timedelta(seconds=0.4), "the keys ran side by side"
    finally:
        JobQueue.reset()


def test_a_queue_rate_limit_from_the_settings_counts_every_type_in_the_queue(db_url: str, types: list[str]) -> None:
    One = define(types, "mail_one", queue="mail")
    Two = define(types, "mail_two", queue="mail")
    queue = activejob.configure(db_url, concurrency=8, poll_interval=1.0, queue_rate_limits={"mail": "2/0.4s"})
    try:
        handles = [*One.perform_all_later([{}] * 3), *Two.perform_all_later([{}] * 2)]
        queue.run_until_idle()
        starts = [h.info().started_at for h in handles]
        assert most_in_any_window(starts, timedelta(seconds=0.4)) == 2
    finally:
        JobQueue.reset()


def test_a_held_back_type_does_not_hold_back_other_types(db_url: str, types: list[str]) -> None:
    Limited = define(types, "held_rate", rate_limit="1/0.5s", priority=10)
    Free = define(types, "free_beside")
    queue = activejob.configure(db_url, concurrency=2, poll_interval=1.0)
    try:
        limited = Limited.perform_all_later([{}] * 2)
        free = Free.perform_all_later([{}] * 6)
        queue.run_until_idle()
        second = max(h.info().started_at for h in limited)
        assert all(h.info().finished_at < second for h in free), "the free jobs waited for the limited type"
    finally:
        JobQueue.reset()


def test_the_types_command_shows_the_rate_limit(tmp_path: Path) -> None:
    module = tmp_path / "rated_types.py"
    module.write_text("from activejob import BaseJob, job\n\n\n"
                      "@job('cli_rated', rate_limit='100/h')\n"
                      "class Rated(BaseJob[dict]):\n    def perform(self, args): ...\n")
    out = subprocess.run([sys.executable, "-m", "activejob", "types", "--import", "rated_types", "--table"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "rate_limit" in out.stdout and "100/h" in out.stdout


def test_the_worker_command_refuses_a_queue_rate_limit_it_cannot_read(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "activejob", "worker", "--database-url",
                          f"sqlite:///{tmp_path / 'w.db'}", "--queue-rate-limit", "mail"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--queue-rate-limit takes QUEUE=LIMIT" in out.stderr


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_four_worker_processes_keep_every_rate_limit(pg_url: str, workers: Workers) -> None:
    import rate_limited_jobs as rl  # here, not at the top: see its docstring

    for _ in range(4):
        workers.start(pg_url, "--concurrency", "4", "--queue-rate-limit", "mail=3/s",
                      imports="tests.rate_limited_jobs", poll_interval=0.5)
    queue = JobQueue(pg_url, auto_migrate=False)
    try:
        queue.enqueue([
            *(rl.PerType.set().request({"n": n}, max_args_bytes=10_000) for n in range(12)),
            *(rl.PerKey.set().request({"n": n, "key": "ab"[n % 2]}, max_args_bytes=10_000) for n in range(8)),
            *(rl.InMail.set().request({"n": n}, max_args_bytes=10_000) for n in range(9)),
        ])
    finally:
        queue.close()
    done = "SELECT count(*) FROM activejob_jobs WHERE status = 'completed'"
    wait_for(lambda: sql(pg_url, done)[0][0] == 29, 60, interval=0.1, what="29 rate-limited jobs completed")
    rows = sql(pg_url, "SELECT name, args, started_at FROM activejob_jobs")
    second = timedelta(seconds=1)

    def starts(name: str, key: str | None = None) -> list[datetime]:
        return [r[2] for r in rows if r[0] == name and (key is None or f'"{key}"' in r[1])]

    assert most_in_any_window(starts("rl_type"), second) == 4
    assert most_in_any_window(starts("rl_keyed", "a"), second) == 2
    assert most_in_any_window(starts("rl_keyed", "b"), second) == 2
    assert most_in_any_window(starts("rl_mail"), second) == 3
    taking = sql(pg_url, "SELECT count(DISTINCT data) FROM activejob_events WHERE type = 'started'")[0][0]
    assert taking >= 2, "several workers took part"


def test_the_dashboard_and_the_api_show_type_and_queue_rate_limits(tmp_path: Path, types: list[str]) -> None:
    pytest.importorskip("starlette")
    with warnings.catch_warnings():  # Starlette prefers httpx2 for its TestClient (see tests/web/conftest.py)
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    from activejob.web import create_app

    Mail = define(types, "dash_rated", rate_limit="10/s", queue="mail")
    queue = activejob.configure(f"sqlite:///{tmp_path / 'dash.db'}", queue_rate_limits={"mail": "100/m"})
    try:
        Mail.perform_later({})
        with TestClient(create_app(queue), base_url="http://localhost") as client:
            page = client.get("/queues", headers={"accept": "text/html"}).text
            described = {t["name"]: t for t in client.get("/api/job-types").json()["job_types"]}
        assert "at most 10/s starts" in page and "at most 100/m starts" in page
        assert described["dash_rated"]["rate_limit"] == "10/s"
    finally:
        JobQueue.reset()


def test_a_worker_registers_the_queue_rate_limits_it_keeps(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url, poll_interval=0.05, queue_rate_limits={"mail": "2/0.4s", "sms": "600/m"})
    try:
        queue.start()
        wait_for(lambda: bool(queue.workers()), 10, what="the worker to register")
        assert queue.workers()[0].queue_rate_limits == {"mail": "2/0.4s", "sms": "600/m"}
    finally:
        JobQueue.reset()


def queues_command(url: str, *options: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "activejob", "queues", "--database-url", url, *options],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out


@pytest.mark.timeout(120)
def test_the_queues_command_shows_the_rate_limits_live_workers_keep(sqlite_url: str, workers: Workers) -> None:
    JobQueue(sqlite_url).close()  # migrated before two workers start on it
    workers.start(sqlite_url, "--queue-rate-limit", "mail=3/s", "--queue-rate-limit", "sms=1/h")
    workers.start(sqlite_url, "--queue-rate-limit", "mail=5/s")
    queue = JobQueue(sqlite_url, auto_migrate=False)
    try:
        wait_for(lambda: len(queue.workers()) == 2, 30, what="both workers to register")
        assert queue.stats()["queue_rate_limits"] == {"mail": ["3/s", "5/s"], "sms": ["1/h"]}
    finally:
        queue.close()

    rows = json.loads(queues_command(sqlite_url, "--json").stdout)
    assert rows["mail"]["rate_limit"] == "3/s, 5/s", "workers that disagree are all shown"
    assert rows["sms"]["rate_limit"] == "1/h" and rows["sms"]["paused"] is False
    table = queues_command(sqlite_url, "--table").stdout
    assert "rate=3/s, 5/s" in table and "rate=1/h" in table


def test_a_queue_without_a_limit_shows_none(sqlite_url: str, types: list[str]) -> None:
    activejob.configure(sqlite_url)
    try:
        define(types, "unlimited_mail", queue="mail").perform_later({})
    finally:
        JobQueue.reset()

    rows = json.loads(queues_command(sqlite_url, "--json").stdout)
    assert rows["mail"]["rate_limit"] is None
    assert "rate=" not in queues_command(sqlite_url, "--table").stdout


@pytest.mark.timeout(120)
def test_explain_tells_of_a_queue_rate_limit_only_another_process_keeps(sqlite_url: str, workers: Workers) -> None:
    import rate_limited_jobs as rl  # here, not at the top: see its docstring

    JobQueue(sqlite_url).close()
    workers.start(sqlite_url, "--queue-rate-limit", "mail=1/h", imports="tests.rate_limited_jobs")
    queue = JobQueue(sqlite_url, auto_migrate=False)  # no queue_rate_limits of its own
    try:
        first, second = queue.enqueue([rl.InMail.set().request({"n": n}, max_args_bytes=10_000) for n in (1, 2)])
        wait_for(lambda: first.status == "completed", 30, what="the first mail job to run")
        why = queue.explain(second.id)
    finally:
        queue.close()
    assert why.reason == "rate_limited", why.message
    assert "queue mail" in why.message and "1/h" in why.message


@pytest.mark.timeout(120)
def test_the_dashboard_shows_a_queue_rate_limit_kept_by_another_process(sqlite_url: str, workers: Workers) -> None:
    pytest.importorskip("starlette")
    with warnings.catch_warnings():  # as in the test above
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    from activejob.web import create_app

    JobQueue(sqlite_url).close()
    workers.start(sqlite_url, "--queue-rate-limit", "mail=7/m")
    queue = JobQueue(sqlite_url, auto_migrate=False)  # no queue_rate_limits of its own
    try:
        wait_for(lambda: bool(queue.workers()), 30, what="the worker to register")
        with TestClient(create_app(queue), base_url="http://localhost") as client:
            page = client.get("/queues", headers={"accept": "text/html"}).text
            stats = client.get("/api/stats").json()
    finally:
        queue.close()
    assert "at most 7/m starts" in page, "a limited queue is listed even without jobs"
    assert stats["queue_rate_limits"] == {"mail": ["7/m"]}
