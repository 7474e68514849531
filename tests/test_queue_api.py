"""Configuring the queue, and reading and changing jobs through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, InvalidTransition, JobNotFound, JobQueue, job


class Args(BaseModel):
    n: int


@job("api_add_one", schema=Args)
class AddOne(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n + 1


@job("api_boom", schema=Args, max_retries=0, queue="risky")
class Boom(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        raise ValueError(f"boom {args.n}")


def test_configure_sets_the_process_wide_queue(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url, concurrency=4)
    try:
        assert JobQueue.get() is queue
        assert queue.settings.concurrency == 4
    finally:
        JobQueue.reset()


def test_get_without_configure_uses_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("ACTIVEJOB_DATABASE_URL", url)
    JobQueue.reset()
    try:
        queue = JobQueue.get()
        assert queue.settings.database_url == url
        handle = AddOne.perform_later(n=1)
        assert queue.get_job(handle.id) is not None
        assert (tmp_path / "env.db").exists()
    finally:
        JobQueue.reset()


def test_get_defaults_to_a_sqlite_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTIVEJOB_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    JobQueue.reset()
    try:
        AddOne.perform_later(n=1)
        assert (tmp_path / "activejob.db").exists()
    finally:
        JobQueue.reset()


def test_unknown_settings_are_refused(sqlite_url: str) -> None:
    with pytest.raises(activejob.ConfigurationError, match="unknown setting.*concurency"):
        activejob.configure(sqlite_url, concurency=3)


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url)
    try:
        with queue.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        JobQueue.reset()


def test_get_job_returns_none_for_an_unknown_id(queue: JobQueue) -> None:
    assert queue.get_job(999_999) is None


def test_get_job_reports_result_error_attempts_and_timestamps(queue: JobQueue) -> None:
    ok = AddOne.perform_later(n=1)
    bad = Boom.perform_later(n=2)
    queue.run_until_idle()
    done, failed = queue.get_job(ok.id), queue.get_job(bad.id)
    assert done is not None and failed is not None
    assert (done.status, done.result, done.attempts) == ("completed", 2, 1)
    assert done.created_at <= done.started_at <= done.finished_at  # type: ignore[operator]
    assert done.duration is not None and done.duration >= 0
    assert (failed.status, failed.error) == ("failed", "ValueError: boom 2")
    assert failed.traceback is not None and "ValueError: boom 2" in failed.traceback


def test_list_jobs_is_newest_first_and_filters(queue: JobQueue) -> None:
    a = AddOne.set(owner="ann").perform_later(n=1)
    b = Boom.perform_later(n=2)
    c = AddOne.perform_later(n=3)
    assert [j.id for j in queue.list_jobs()] == [c.id, b.id, a.id]
    assert [j.id for j in queue.list_jobs(name="api_add_one")] == [c.id, a.id]
    assert [j.id for j in queue.list_jobs(queue="risky")] == [b.id]
    assert [j.id for j in queue.list_jobs(owner="ann")] == [a.id]
    assert [j.id for j in queue.list_jobs(limit=1, offset=1)] == [b.id]
    queue.run_until_idle()
    assert [j.id for j in queue.list_jobs(status="failed")] == [b.id]
    assert [j.id for j in queue.list_jobs(status=["failed", "completed"], limit=10)] == [c.id, b.id, a.id]


def test_stats_count_per_status_name_and_queue(queue: JobQueue) -> None:
    AddOne.perform_later(n=1)
    Boom.perform_later(n=1)
    queue.run_until_idle()
    AddOne.perform_later(n=2)
    stats = queue.stats()
    assert (stats["pending"], stats["completed"], stats["failed"], stats["total"]) == (1, 1, 1, 3)
    assert stats["by_name"]["api_add_one"]["completed"] == 1
    assert stats["by_name"]["api_add_one"]["pending"] == 1
    assert stats["by_queue"]["risky"]["failed"] == 1


def test_available_job_types_lists_registered_names(queue: JobQueue) -> None:
    assert {"api_add_one", "api_boom"} <= set(queue.available_job_types())


def test_cancel_a_pending_job(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    assert queue.cancel(handle.id) == "cancelled"
    queue.run_until_idle()
    info = queue.get_job(handle.id)
    assert info is not None and info.status == "cancelled" and info.attempts == 0


def test_cancel_an_unknown_job_raises(queue: JobQueue) -> None:
    with pytest.raises(JobNotFound):
        queue.cancel(12345)


def test_delete_removes_the_job_and_logs_it(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    queue.delete(handle.id)
    assert queue.get_job(handle.id) is None
    assert [e.type for e in queue.events(handle.id)] == ["deleted"]


def test_retry_runs_a_failed_job_again(queue: JobQueue) -> None:
    handle = Boom.perform_later(n=1)
    queue.run_until_idle()
    queue.retry(handle.id)
    info = queue.get_job(handle.id)
    assert info is not None and (info.status, info.attempts, info.error) == ("pending", 0, None)


def test_retry_refuses_a_job_that_did_not_fail(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    with pytest.raises(InvalidTransition, match="pending"):
        queue.retry(handle.id)


def test_every_transition_is_in_the_event_log(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    queue.run_until_idle()
    events = queue.events(handle.id)
    assert [e.type for e in events] == ["enqueued", "started", "completed"]
    assert [e.status for e in events] == ["pending", "running", "completed"]
    assert events[0].id < events[1].id < events[2].id
    assert events[2].data["result"] == 2


def test_list_jobs_can_go_oldest_first(queue: JobQueue) -> None:
    a, b = AddOne.perform_later(n=1), AddOne.perform_later(n=2)
    assert [j.id for j in queue.list_jobs(order="oldest")] == [a.id, b.id]
    with pytest.raises(ValueError, match="order"):
        queue.list_jobs(order="sideways")


def test_retry_with_expect_refuses_a_job_in_another_state(queue: JobQueue) -> None:
    handle = Boom.perform_later(n=1)
    queue.run_until_idle()
    with pytest.raises(InvalidTransition):
        queue.retry(handle.id, expect=["cancelled"])
    assert queue.retry(handle.id, expect=["failed"]).id == handle.id


@pytest.mark.parametrize(("setting", "bad"), [("pool_size", 0), ("pool_size", "5"), ("watch", "no"),
                                              ("auto_migrate", 1), ("worker_id", "")])
def test_bad_setting_values_are_refused_by_name(sqlite_url: str, setting: str, bad: object) -> None:
    with pytest.raises(activejob.ConfigurationError, match=setting):
        activejob.configure(sqlite_url, **{setting: bad})


def test_waiting_on_a_handle_times_out_under_a_frozen_clock(sqlite_url: str) -> None:
    from freezegun import freeze_time

    @job("never_run_here")
    class NeverRun(BaseJob[Any]):
        def perform(self, args: Any) -> None: ...

    activejob.configure(sqlite_url)
    try:
        handle = NeverRun.perform_later()
        with freeze_time("2030-01-01"), pytest.raises(TimeoutError, match="still pending"):
            handle.wait(timeout=0.2)
    finally:
        JobQueue.reset()


def test_delete_with_an_expected_state_leaves_a_job_that_moved_on(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    with pytest.raises(InvalidTransition, match="is pending, not failed; it was not deleted"):
        queue.delete(handle.id, expect=["failed"])
    assert queue.get_job(handle.id) is not None
    queue.delete(handle.id, expect=["pending"])
    assert queue.get_job(handle.id) is None


def test_cancel_with_an_expected_state_leaves_a_job_that_moved_on(queue: JobQueue) -> None:
    handle = AddOne.perform_later(n=1)
    queue.run_until_idle()
    with pytest.raises(InvalidTransition, match="is completed"):
        queue.cancel(handle.id, expect=["pending"])
    info = queue.get_job(handle.id)
    assert info is not None and info.status == "completed"


@pytest.mark.parametrize(("call", "message"), [
    (lambda q: q.list_jobs(status="complete"), "status 'complete' is not one of pending, running, waiting, completed"),
    (lambda q: q.list_jobs(status=["failed", "done"]), "status 'done' is not one of"),
    (lambda q: q.list_jobs(limit=0), "limit must be a whole number >= 1, got 0"),
    (lambda q: q.events(after="x"), "after must be a whole number >= 0, got 'x'"),
    (lambda q: q.events(limit=-1), "limit must be a whole number >= 1, got -1"),
])
def test_a_read_with_a_filter_that_can_match_nothing_says_so(queue: JobQueue, call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(queue)


@pytest.mark.parametrize("call", [lambda q: q.cancel("abc"), lambda q: q.get_job("x"), lambda q: q.retry(True),
                                  lambda q: q.get_batch("1.5")])
def test_an_id_that_is_not_a_whole_number_is_refused_saying_so(queue: JobQueue, call: Any) -> None:
    with pytest.raises(ValueError, match=r"a (job|batch) id is a whole number, got"):
        call(queue)


def test_await_finished_says_which_job_is_still_unfinished_when_it_times_out(queue: JobQueue) -> None:
    import anyio

    @job("api_never_run")
    class NeverRun(BaseJob[Any]):
        def perform(self, args: Any) -> None: ...

    handle = NeverRun.perform_in(3600)

    async def main() -> None:
        await handle.await_finished(timeout=0.1)

    with pytest.raises(TimeoutError, match=rf"job {handle.id} \(api_never_run\) still pending after 0.1s"):
        anyio.run(main)
