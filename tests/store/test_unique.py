"""Unique keys in the store: how long a job holds its key (`unique_until`), and what a
duplicate does with the holder (`unique_mode`), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from activejob.errors import JobOptionsError
from activejob.store import jobs as jobs_table
from activejob.store.enqueue import UniqueKeyHeld

from .contract import NAME, NOW, Jobs, at, cancelled, completed, failed, request

HOUR = 3600


def keyed(key: str = "k", **more: object) -> object:
    return request(unique_key=key, **more)  # type: ignore[arg-type]


def enqueue(jobs: Jobs, *new: object, now_s: float = 0) -> tuple[list[int], list[str]]:
    """Enqueue `new` in one call at NOW + now_s; the ids handed back and the types of the events written."""
    ids, events = jobs.store.enqueue(list(new), at(now_s))  # type: ignore[arg-type]
    return ids, [e.type for e in events]


def until_row(jobs: Jobs, job_id: int) -> str | None:
    with jobs.store.read() as c:
        return c.execute(select(jobs_table.c.unique_until).where(jobs_table.c.id == job_id)).scalar()  # type: ignore[no-any-return]


# -- unique_until ---------------------------------------------------------------------

def test_a_running_job_still_holds_a_key_held_until_finished(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed())
    jobs.claim()
    assert enqueue(jobs, keyed()) == ([first], [])


@pytest.mark.parametrize("outcome", [completed, failed, cancelled], ids=["completed", "failed", "cancelled"])
def test_a_key_held_until_finished_is_free_once_the_job_ends_whatever_the_outcome(jobs: Jobs, outcome: object) -> None:
    (first,), _ = enqueue(jobs, keyed())
    (claimed,) = jobs.claim()
    jobs.store.finish([outcome(claimed)], NOW)  # type: ignore[operator]
    (again,), types = enqueue(jobs, keyed())
    assert again != first and types == ["enqueued"]


def test_a_key_held_until_started_is_free_once_the_job_is_claimed(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(unique_until="started"))
    assert enqueue(jobs, keyed(unique_until="started"))[0] == [first]
    jobs.claim()
    (second,), types = enqueue(jobs, keyed(unique_until="started"))
    assert second != first and types == ["enqueued"]
    assert enqueue(jobs, keyed(unique_until="started"))[0] == [second]


def test_a_key_held_for_a_time_is_held_after_the_job_finished(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(unique_until="time", unique_expires_at=at(HOUR)))
    (claimed,) = jobs.claim()
    jobs.store.finish([completed(claimed)], NOW)
    assert enqueue(jobs, keyed(), now_s=HOUR - 1)[0] == [first]


def test_a_key_held_for_a_time_is_released_by_the_first_enqueue_after_it_expired(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(unique_until="time", unique_expires_at=at(HOUR)))
    (second,), types = enqueue(jobs, keyed(unique_until="time", unique_expires_at=at(3 * HOUR)), now_s=HOUR)
    assert second != first and types == ["enqueued"]
    assert (until_row(jobs, first), until_row(jobs, second)) == ("expired", "time")
    assert jobs.status(first) == "pending", "only the key is released, the job stays"
    assert enqueue(jobs, keyed(), now_s=2 * HOUR)[0] == [second]


# -- unique_mode ----------------------------------------------------------------------

def test_replace_gives_the_pending_holder_the_new_args_and_run_time_under_the_same_id(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(run_at=at(60)))
    before = jobs.last_event()
    (again,), types = enqueue(jobs, keyed(unique_mode="replace", args='{"n": 2}', run_at=at(10)))
    info = jobs.get(first)
    assert again == first and types == ["replaced"]
    assert (info.args, info.run_at, info.status) == ({"n": 2}, at(10), "pending")
    (event,) = jobs.log(before)
    assert (event.type, event.job_id, event.status) == ("replaced", first, "pending")
    assert event.data == {"mode": "replace", "changed": ["args", "run_at"], "run_at": at(10).isoformat(),
                          "previous_run_at": at(60).isoformat()}


def test_debounce_moves_the_pending_holder_to_the_new_run_time_with_the_new_args(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(run_at=at(30)))
    (again,), types = enqueue(jobs, keyed(unique_mode="debounce", args='{"n": 3}', run_at=at(20 + 30)), now_s=20)
    info = jobs.get(first)
    assert again == first and types == ["replaced"]
    assert (info.args, info.run_at) == ({"n": 3}, at(50))
    assert jobs.log(types=["replaced"])[0].data["mode"] == "debounce"


def test_a_debounced_job_runs_only_once_its_run_time_is_reached_again(jobs: Jobs) -> None:
    enqueue(jobs, keyed(run_at=at(30)))
    enqueue(jobs, keyed(unique_mode="debounce", run_at=at(50)), now_s=20)
    assert jobs.claim(now=at(30)) == []
    assert len(jobs.claim(now=at(50))) == 1


def test_replace_with_nothing_new_writes_no_event(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed())
    assert enqueue(jobs, keyed(unique_mode="replace")) == ([first], [])


def test_replace_of_a_running_holder_leaves_it_as_it_is(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed())
    jobs.claim()
    assert enqueue(jobs, keyed(unique_mode="replace", args='{"n": 2}')) == ([first], [])
    assert jobs.get(first).args == {"n": 1}


def test_replace_never_hands_its_args_to_a_holder_of_another_type(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(name="other_type"))
    assert enqueue(jobs, keyed(unique_mode="replace", args='{"n": 2}')) == ([first], [])
    assert jobs.get(first).args == {"n": 1}


def test_replace_of_a_free_key_enqueues_a_new_job(jobs: Jobs) -> None:
    (first,), types = enqueue(jobs, keyed(unique_mode="replace"))
    assert types == ["enqueued"] and jobs.status(first) == "pending"


def test_raise_refuses_a_held_key_naming_the_holder(jobs: Jobs) -> None:
    (first,), _ = enqueue(jobs, keyed(name="other_type"))
    with pytest.raises(UniqueKeyHeld) as refused:
        enqueue(jobs, keyed(unique_mode="raise"))
    assert (refused.value.holder_id, refused.value.holder_name) == (first, "other_type")
    assert (refused.value.job, refused.value.unique_key) == (NAME, "k")


def test_raise_refuses_the_whole_call_and_writes_nothing(jobs: Jobs) -> None:
    enqueue(jobs, keyed())
    before = jobs.last_event()
    with pytest.raises(UniqueKeyHeld):
        enqueue(jobs, request(), keyed("fresh"), keyed(unique_mode="raise"))
    assert len(jobs.store.list_jobs()) == 1 and jobs.log(before) == []


def test_raise_of_a_free_key_enqueues(jobs: Jobs) -> None:
    assert enqueue(jobs, keyed(unique_mode="raise"))[1] == ["enqueued"]


# -- several jobs of one key in one call ------------------------------------------------

def test_a_call_with_one_key_twice_in_replace_mode_keeps_one_job_with_the_last_args(jobs: Jobs) -> None:
    ids, types = enqueue(jobs, keyed(), keyed(unique_mode="replace", args='{"n": 2}'))
    assert ids[0] == ids[1] and types == ["enqueued", "replaced"]
    assert jobs.get(ids[0]).args == {"n": 2}


def test_a_call_with_one_key_twice_in_raise_mode_is_refused_as_bad_input(jobs: Jobs) -> None:
    with pytest.raises(JobOptionsError, match=f"{NAME}: unique_key 'k' is given to two jobs of one call"):
        enqueue(jobs, keyed(), keyed(unique_mode="raise"))
    assert jobs.store.list_jobs() == []
