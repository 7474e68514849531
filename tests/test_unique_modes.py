"""Unique jobs from code: per-type and per-call keys, modes and holding times, the
DuplicateJobError of `unique_mode="raise"`, the `job_replaced` signal, and one holder per
key among four worker processes on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import unique_jobs
from freezegun import freeze_time
from pydantic import BaseModel
from runner_support import Workers, sql, wait_for
from sqlalchemy import create_engine
from sqlmodel import Session

from activejob import BaseJob, DuplicateJobError, JobHandle, JobQueue, job, signals
from activejob.errors import JobArgumentsError, JobOptionsError


class Account(BaseModel):
    account_id: int
    full: bool = False


@job("uq_sync", schema=Account, unique_key=lambda args: f"sync:{args.account_id}")
class SyncAccount(BaseJob[Account]):
    def perform(self, args: Account) -> int:
        return args.account_id


def stored(queue: JobQueue, handle: JobHandle) -> Any:
    info = queue.get_job(handle.id)
    assert info is not None
    return info


def test_a_per_type_key_skips_a_duplicate_and_hands_back_the_existing_job(queue: JobQueue) -> None:
    first = SyncAccount.perform_later(account_id=7)
    again = SyncAccount.perform_later(account_id=7, full=True)
    other = SyncAccount.perform_later(account_id=8)
    assert again.id == first.id != other.id
    assert stored(queue, first).args == {"account_id": 7, "full": False}
    assert stored(queue, first).unique_key == "sync:7"


def test_a_key_held_by_a_job_of_another_type_hands_back_that_job_under_its_own_name(queue: JobQueue) -> None:
    @job("uq_sync_other", schema=Account, unique_key=lambda args: f"sync:{args.account_id}")
    class OtherType(BaseJob[Account]):
        def perform(self, args: Account) -> None:
            pass

    first = SyncAccount.perform_later(account_id=9)
    again = OtherType.perform_later(account_id=9)
    assert (again.id, again.name) == (first.id, "uq_sync")
    assert repr(again) == f"<JobHandle uq_sync #{first.id}>"


def test_a_per_call_key_may_be_a_function_of_each_jobs_arguments(queue: JobQueue) -> None:
    by_account = SyncAccount.set(unique_key=lambda args: f"call:{args.account_id}")
    first, second, again = by_account.perform_all_later([{"account_id": 1}, {"account_id": 2}, {"account_id": 1}])
    alone = by_account.perform_later(account_id=2, full=True)
    assert again.id == first.id != second.id == alone.id
    assert [stored(queue, h).unique_key for h in (first, second)] == ["call:1", "call:2"]


def test_a_per_call_key_function_that_raises_refuses_the_enqueue_naming_the_job(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match=r"uq_sync.*unique_key raised ZeroDivisionError"):
        SyncAccount.set(unique_key=lambda args: 1 / 0).perform_later(account_id=3)
    assert queue.list_jobs() == []


def test_an_owner_given_as_a_function_is_refused_naming_the_job_and_the_option(queue: JobQueue) -> None:
    with pytest.raises(JobOptionsError, match=r"uq_sync.*owner must be text"):
        SyncAccount.set(owner=lambda args: "alice")


def test_a_per_type_mode_applies_to_every_call(queue: JobQueue) -> None:
    @job("uq_replacing", schema=Account, unique_key=lambda a: f"r:{a.account_id}", unique_mode="replace")
    class Replacing(BaseJob[Account]):
        def perform(self, args: Account) -> None: ...

    first = Replacing.perform_later(account_id=1)
    again = Replacing.perform_later(account_id=1, full=True)
    assert again.id == first.id and stored(queue, first).args["full"] is True


def test_replace_per_call_gives_the_pending_job_the_new_args_and_sends_job_replaced(queue: JobQueue) -> None:
    heard: list[dict[str, Any]] = []

    def replaced(sender: Any, **payload: Any) -> None:
        heard.append(payload)

    first = SyncAccount.perform_later(account_id=7)
    with signals.job_replaced.connected_to(replaced, sender=SyncAccount):
        again = SyncAccount.set(unique_mode="replace").perform_later(account_id=7, full=True)
    assert again.id == first.id and stored(queue, first).args["full"] is True
    assert [(p["job_id"], p["event"], p["mode"], p["changed"][0]) for p in heard] == [
        (first.id, "replaced", "replace", "args")]
    assert [e.type for e in queue.events(first.id)] == ["enqueued", "replaced"]


def test_debounce_moves_the_pending_job_to_now_plus_the_wait(queue: JobQueue) -> None:
    with freeze_time("2030-01-01 10:00:00") as frozen:
        first = SyncAccount.set(wait=timedelta(seconds=30)).perform_later(account_id=7)
        frozen.move_to("2030-01-01 10:00:20")
        again = SyncAccount.set(wait=timedelta(seconds=30), unique_mode="debounce").perform_later(account_id=7)
        assert again.id == first.id
        assert stored(queue, first).run_at == datetime(2030, 1, 1, 10, 0, 50, tzinfo=UTC)
        frozen.move_to("2030-01-01 10:00:40")
        queue.run_until_idle()
        assert first.status == "pending", "not due yet: the debounce moved it"
        frozen.move_to("2030-01-01 10:00:50")
        queue.run_until_idle()
        assert first.status == "completed"


def test_raise_refuses_a_duplicate_with_the_existing_jobs_handle(queue: JobQueue) -> None:
    first = SyncAccount.perform_later(account_id=7)
    with pytest.raises(DuplicateJobError, match=r"uq_sync: unique key 'sync:7' is held by job \d+") as refused:
        SyncAccount.set(unique_mode="raise").perform_later(account_id=7, full=True)
    assert isinstance(refused.value.existing, JobHandle) and refused.value.existing == first
    assert (refused.value.existing.name, refused.value.existing.status) == ("uq_sync", "pending")
    assert (refused.value.job, refused.value.unique_key) == ("uq_sync", "sync:7")
    assert queue.stats()["total"] == 1


def test_raise_refuses_a_whole_perform_all_later(queue: JobQueue) -> None:
    SyncAccount.perform_later(account_id=7)
    with pytest.raises(DuplicateJobError):
        SyncAccount.set(unique_mode="raise").perform_all_later([{"account_id": 1}, {"account_id": 7}])
    assert queue.stats()["total"] == 1


def test_raise_from_the_awaitable_call(queue: JobQueue) -> None:
    SyncAccount.perform_later(account_id=7)

    async def again() -> None:
        await SyncAccount.set(unique_mode="raise").aperform_later(account_id=7)

    with pytest.raises(DuplicateJobError):
        anyio.run(again)


def test_raise_in_a_session_takes_back_only_the_refused_call(queue: JobQueue) -> None:
    SyncAccount.perform_later(account_id=7)
    engine = create_engine(queue.settings.database_url)
    try:
        with Session(engine) as session:
            kept = SyncAccount.set(session=session).perform_later(account_id=1)
            with pytest.raises(DuplicateJobError):
                SyncAccount.set(session=session, unique_mode="raise").perform_all_later(
                    [{"account_id": 2}, {"account_id": 7}])
            session.commit()
    finally:
        engine.dispose()
    assert sorted(j.args["account_id"] for j in queue.list_jobs()) == [1, 7]
    assert kept.status == "pending"


def test_held_until_started_lets_a_new_job_queue_once_the_first_runs(queue: JobQueue) -> None:
    @job("uq_started", schema=Account, unique_key=lambda a: f"s:{a.account_id}", unique_until="started")
    class UntilStarted(BaseJob[Account]):
        def perform(self, args: Account) -> None:
            if not args.full:  # while it runs, the key is free again: this one queues
                seconds.append(UntilStarted.perform_later(account_id=args.account_id, full=True))

    seconds: list[JobHandle] = []
    first = UntilStarted.perform_later(account_id=1)
    assert UntilStarted.perform_later(account_id=1, full=True).id == first.id
    queue.run_until_idle()
    assert [h.id != first.id for h in seconds] == [True]
    assert (first.status, seconds[0].status) == ("completed", "completed")


def test_held_for_a_time_outlives_the_job_and_then_lets_go(queue: JobQueue) -> None:
    with freeze_time("2030-01-01 10:00:00") as frozen:
        first = SyncAccount.set(unique_until=timedelta(minutes=10)).perform_later(account_id=7)
        queue.run_until_idle()
        assert first.status == "completed"
        assert SyncAccount.perform_later(account_id=7).id == first.id
        frozen.move_to("2030-01-01 10:10:00")
        later = SyncAccount.perform_later(account_id=7)
        assert later.id != first.id
        assert (stored(queue, first).unique_until, stored(queue, later).unique_until) == ("expired", None)


def test_the_cli_shows_a_jobs_unique_key_and_how_long_it_is_held(queue: JobQueue) -> None:
    from click.testing import CliRunner

    from activejob.cli import main

    handle = SyncAccount.set(unique_until="started").perform_later(account_id=7)
    out = CliRunner().invoke(main, ["show", str(handle.id), "--database-url", queue.settings.database_url, "--json"])
    assert out.exit_code == 0, out.output
    assert '"unique_key": "sync:7"' in out.output and '"unique_until": "started"' in out.output


def test_the_dashboard_and_rest_api_show_the_key_how_long_it_is_held_and_a_replace(queue: JobQueue) -> None:
    import warnings

    from activejob.web import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from starlette.testclient import TestClient

    handle = SyncAccount.set(unique_until="started").perform_later(account_id=7)
    SyncAccount.set(unique_mode="debounce", wait=60).perform_later(account_id=7, full=True)
    with TestClient(create_app(queue), base_url="http://localhost") as client:
        detail = client.get(f"/api/jobs/{handle.id}").json()
        page = client.get(f"/jobs/{handle.id}", headers={"accept": "text/html"}).text
    job = detail["job"]
    assert (job["unique_key"], job["unique_until"], job["args"]["full"]) == ("sync:7", "started", True)
    assert [e["data"]["mode"] for e in detail["events"] if e["event"] == "replaced"] == ["debounce"]
    assert "sync:7" in page and "until it starts" in page
    assert "Replaced by a duplicate (debounce)" in page and "changed args, run_at" in page


# -- four worker processes ----------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_four_workers_enqueueing_duplicates_never_run_two_holders_of_a_key(
        pg_url: str, workers: Workers, tmp_path: Path) -> None:
    keys, feeders = 3, 4
    for _ in range(4):
        workers.start(pg_url, "--concurrency", "3", imports="tests.unique_jobs", wait_ready=False)
    wait_for(lambda: all("started: concurrency" in w.output() or not w.alive() for w in workers.started), 30,
             what="the workers to start")
    assert all(w.alive() for w in workers.started), [w.output() for w in workers.started]
    queue = JobQueue(pg_url, auto_migrate=False)
    try:
        queue.enqueue([unique_jobs.Feeder.set().request({"keys": keys, "dir": str(tmp_path), "seconds": 2.0},
                                                        max_args_bytes=10_000) for _ in range(feeders)])
        wait_for(lambda: sql(pg_url, "SELECT count(*) FROM activejob_jobs WHERE status NOT IN "
                                     "('completed', 'failed')")[0][0] == 0, 30, interval=0.1, what="every job done")
    finally:
        queue.close()
    lines = [line.split() for line in (tmp_path / "runs.log").read_text().splitlines()]
    fed = [line for line in lines if line[0] == "fed"]
    lines = [line for line in lines if line[0] != "fed"]
    assert [line for line in lines if line[0] != "run"] == [], "no two holders of a key ran at once"
    runs = [(int(key), int(job_id), pid) for _, key, job_id, pid in lines]
    assert len({job_id for _, job_id, _ in runs}) == len(runs), "each job ran once"
    turns = sql(pg_url, "SELECT unique_key, count(*), min(status), max(status) FROM activejob_jobs "
                        "WHERE name = 'uq_turn' GROUP BY unique_key ORDER BY unique_key")
    assert [(k, n) for k, n, _, _ in turns] == [(f"turn:{key}", sum(1 for r in runs if r[0] == key))
                                              for key in range(keys)]
    assert all(low == high == "completed" for _, _, low, high in turns)
    assert min(n for _, n, _, _ in turns) >= 3, "each key changed hands several times"
    assert len({pid for _, _, pid in runs}) >= 2, "the turns were taken in several processes"
    assert len(fed) == feeders and len({pid for _, _, pid in fed}) >= 2, "feeders ran in several processes at once"
    assert sum(int(sent) for _, sent, _ in fed) > 2 * len(runs), "most enqueues met a held key"
