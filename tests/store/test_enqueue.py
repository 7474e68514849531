"""enqueue: the fast paths (a job alone, unique or not; many jobs without unique keys; no
caller's connection) and the general path (many unique keys, dependencies, or the caller's
own transaction) write the same rows and events."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from activejob.records import JobInfo
from activejob.store import NewJob, Store
from activejob.store.enqueue import UniqueKeyHeld

from .contract import NAME, NOW, Jobs, at, request

Path = Callable[[Store, list[NewJob]], tuple[list[int], list[Any]]]


def fast(store: Store, new: list[NewJob]) -> tuple[list[int], list[Any]]:
    assert all(j.unique_key is None for j in new)
    return store.enqueue(new, NOW)


def in_transaction(store: Store, new: list[NewJob]) -> tuple[list[int], list[Any]]:
    """The general path, taken for a caller's connection (`perform_later(session=...)`)."""
    with store.engine.begin() as conn:
        return store.enqueue(new, NOW, conn=conn)


def keyed(store: Store, new: list[NewJob]) -> tuple[list[int], list[Any]]:
    """A unique key each: a job alone takes the fast path, several the general path."""
    return store.enqueue([replace(j, unique_key=f"key-{i}") for i, j in enumerate(new)], NOW)


def keyed_in_transaction(store: Store, new: list[NewJob]) -> tuple[list[int], list[Any]]:
    """A unique key each, on the general path however many there are."""
    return in_transaction(store, [replace(j, unique_key=f"key-{i}") for i, j in enumerate(new)])


PATHS = pytest.mark.parametrize("path", [fast, in_transaction, keyed, keyed_in_transaction],
                                ids=["fast", "session", "unique", "unique-session"])


def alone(store: Store, job: NewJob) -> tuple[list[int], list[Any]]:
    """One job with a unique key: the fast path, which leaves what it cannot settle to the general one."""
    return store.enqueue([job], NOW)


def alone_in_transaction(store: Store, job: NewJob) -> tuple[list[int], list[Any]]:
    return in_transaction(store, [job])


ONE_UNIQUE = pytest.mark.parametrize("enqueue", [alone, alone_in_transaction], ids=["fast", "general"])


def without_identity(info: JobInfo) -> dict[str, Any]:
    row = info.to_dict()
    for key in ("id", "unique_key"):
        row.pop(key)
    return row


@PATHS
def test_one_job_is_stored_pending_with_its_enqueued_event(jobs: Jobs, path: Path) -> None:
    ids, events = path(jobs.store, [request(queue="mail", priority=5, owner="alice", max_retries=2)])
    info = jobs.get(ids[0])
    assert (info.name, info.queue, info.priority, info.owner, info.max_retries) == (NAME, "mail", 5, "alice", 2)
    assert (info.status, info.attempts, info.args, info.run_at, info.created_at) == ("pending", 0, {"n": 1}, NOW, NOW)
    assert [(e.type, e.job_id, e.status, e.attempt, e.data) for e in events] == [(
        "enqueued", ids[0], "pending", 0, {})]
    jobs.logged(events, after=0)


@PATHS
def test_a_batch_keeps_its_order_in_ids_and_events(jobs: Jobs, path: Path) -> None:
    batch = [request(args=f'{{"n": {n}}}') for n in range(5)]
    ids, events = path(jobs.store, batch)
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [jobs.get(i).args["n"] for i in ids] == list(range(5))
    assert [e.job_id for e in events] == ids
    jobs.logged(events, after=0)


@PATHS
def test_a_scheduled_job_event_says_when_it_runs(jobs: Jobs, path: Path) -> None:
    ids, events = path(jobs.store, [request(run_at=at(60))])
    assert events[0].data == {"run_at": at(60).isoformat()}
    assert jobs.get(ids[0]).run_at == at(60)
    jobs.logged(events, after=0)


@PATHS
@pytest.mark.parametrize("later", [[60, 60, 60], [60, 0, 60]], ids=["one schedule", "several"])
def test_a_batch_logs_each_jobs_event_with_its_own_schedule_and_owner(jobs: Jobs, path: Path, later: list[int]) -> None:
    batch = [request(run_at=at(s) if s else NOW, owner=f"user-{i}", queue=f"q{i}") for i, s in enumerate(later)]
    ids, events = path(jobs.store, batch)
    assert [e.job_id for e in events] == ids
    assert [e.data for e in events] == [{"run_at": at(s).isoformat()} if s else {} for s in later]
    assert [(e.owner, e.queue, e.status, e.attempt) for e in events] == [
        (f"user-{i}", f"q{i}", "pending", 0) for i in range(3)]
    jobs.logged(events, after=0)


@PATHS
def test_parent_and_concurrency_key_are_stored(jobs: Jobs, path: Path) -> None:
    parent = jobs.add()[0]
    ids, _ = path(jobs.store, [request(parent_id=parent, concurrency_key="tenant-1")])
    info = jobs.get(ids[0])
    assert (info.parent_id, info.concurrency_key) == (parent, "tenant-1")


def test_every_path_writes_the_same_row(jobs: Jobs) -> None:
    new = request(queue="mail", priority=3, owner="bob", run_at=at(5), concurrency_key="k")
    rows = [without_identity(jobs.get(path(jobs.store, [new])[0][0])) for path in (fast, in_transaction, keyed)]
    assert rows[0] == rows[1] == rows[2]


def test_every_path_writes_the_same_rows_for_many_jobs_with_every_column_set(jobs: Jobs) -> None:
    """A bulk enqueue's fast path (its own statement on each database) against the general ones."""
    parent = jobs.add()[0]
    batch = jobs.store.create_batch(description=None, owner=None, callbacks=None, now=NOW)
    full = request(queue="mail", priority=3, owner="bob", run_at=at(5), max_retries=7, parent_id=parent,
                   concurrency_key="tenant-1", batch_id=batch, rate_key="api", args_version=2,
                   meta='{"timeout": 5}', args='{"text": "naïve \\u00e9 \\"quoted\\" ✓"}')
    new = [full, request(args='{"n": 2}')]
    rows = [[without_identity(jobs.get(i)) for i in path(jobs.store, new)[0]] for path in (fast, in_transaction, keyed)]
    assert rows[0] == rows[1] == rows[2]
    first = rows[0][0]
    assert (first["queue"], first["priority"], first["owner"], first["max_retries"], first["parent_id"]) == (
        "mail", 3, "bob", 7, parent)
    assert (first["concurrency_key"], first["batch_id"], first["args"]) == (
        "tenant-1", batch, json.loads(full.args))


def test_nothing_to_enqueue_writes_nothing(jobs: Jobs) -> None:
    assert jobs.store.enqueue([], NOW) == ([], [])
    assert jobs.log() == []


@ONE_UNIQUE
def test_a_taken_unique_key_hands_back_the_existing_job_without_an_event(jobs: Jobs, enqueue: Any) -> None:
    first, events = enqueue(jobs.store, request(unique_key="daily-report"))
    again, more = enqueue(jobs.store, request(unique_key="daily-report", args='{"n": 2}'))
    assert again == first and more == []
    assert jobs.get(first[0]).args == {"n": 1}
    assert [e.id for e in jobs.log()] == [e.id for e in events]


@ONE_UNIQUE
def test_a_duplicate_learns_the_holders_name_when_another_type_holds_the_key(jobs: Jobs, enqueue: Any) -> None:
    (first,), _ = enqueue(jobs.store, request("report_a", unique_key="k"))
    (again,), events = enqueue(jobs.store, request("report_b", unique_key="k"))
    assert (again, again.name, events) == (first, "report_a", [])


@ONE_UNIQUE
def test_a_key_held_until_started_is_free_once_its_holder_runs(jobs: Jobs, enqueue: Any) -> None:
    (first,), _ = enqueue(jobs.store, request(unique_key="k", unique_until="started"))
    assert enqueue(jobs.store, request(unique_key="k", unique_until="started"))[0] == [first]
    assert [c.id for c in jobs.claim()] == [first]
    (again,), events = enqueue(jobs.store, request(unique_key="k", unique_until="started"))
    assert again != first and [e.type for e in events] == ["enqueued"]


@ONE_UNIQUE
def test_a_key_whose_time_is_over_is_let_go_and_taken_by_the_new_job(jobs: Jobs, enqueue: Any) -> None:
    (first,), _ = enqueue(jobs.store, request(unique_key="k", unique_until="time", unique_expires_at=NOW))
    (again,), events = enqueue(jobs.store, request(unique_key="k"))
    assert again != first and [e.type for e in events] == ["enqueued"]
    assert jobs.store.get(first).unique_until == "expired"


@ONE_UNIQUE
@pytest.mark.parametrize("mode", ["replace", "debounce"])
def test_a_duplicate_that_replaces_gives_the_pending_holder_its_args(jobs: Jobs, enqueue: Any, mode: str) -> None:
    (first,), _ = enqueue(jobs.store, request(unique_key="k", unique_mode=mode))
    (again,), events = enqueue(jobs.store, request(unique_key="k", unique_mode=mode, args='{"n": 2}'))
    assert again == first and [e.type for e in events] == ["replaced"]
    assert jobs.get(first).args == {"n": 2}


@ONE_UNIQUE
def test_a_duplicate_in_raise_mode_is_refused_naming_the_holder(jobs: Jobs, enqueue: Any) -> None:
    (first,), _ = enqueue(jobs.store, request(unique_key="k", unique_mode="raise"))
    with pytest.raises(UniqueKeyHeld) as held:
        enqueue(jobs.store, request(unique_key="k", unique_mode="raise"))
    assert (held.value.holder_id, held.value.holder_name) == (first, NAME)


def test_a_mixed_batch_returns_every_id_in_order_and_events_only_for_new_jobs(jobs: Jobs) -> None:
    taken = jobs.store.enqueue([request(unique_key="taken")], NOW)[0][0]
    before = jobs.last_event()
    ids, events = jobs.store.enqueue(
        [request(), request(unique_key="taken"), request(unique_key="fresh"), request()], NOW)
    assert ids[1] == taken and len(set(ids)) == 4
    assert [e.job_id for e in events] == [ids[0], ids[2], ids[3]]
    jobs.logged(events, after=before)


def test_a_bulk_of_keys_writes_the_free_ones_at_once_and_hands_held_ones_their_holders(jobs: Jobs) -> None:
    (held,), _ = jobs.store.enqueue([request("report_a", unique_key="held")], NOW)
    before = jobs.last_event()
    keys = ["a", "held", "b", "a", "c"]
    ids, events = jobs.store.enqueue([request(unique_key=k, args=f'{{"n": {n}}}') for n, k in enumerate(keys)], NOW)
    assert ids[1] == held and ids[1].name == "report_a" and ids[3] == ids[0]
    assert ids[0] < ids[2] < ids[4] and len({ids[0], ids[2], ids[4], held}) == 4
    assert [jobs.get(i).args["n"] for i in (ids[0], ids[2], ids[4])] == [0, 2, 4]
    assert [e.job_id for e in events] == [ids[0], ids[2], ids[4]]
    jobs.logged(events, after=before)


def test_a_bulk_in_raise_mode_with_one_held_key_writes_none_of_its_jobs(jobs: Jobs) -> None:
    (held,), _ = jobs.store.enqueue([request(unique_key="held")], NOW)
    with pytest.raises(UniqueKeyHeld):
        jobs.store.enqueue([request(unique_key=k, unique_mode="raise") for k in ("x", "held", "y")], NOW)
    assert [j.id for j in jobs.store.list_jobs()] == [held]


def test_a_bulk_meeting_a_key_whose_time_is_over_takes_it(jobs: Jobs) -> None:
    (first,), _ = jobs.store.enqueue([request(unique_key="k", unique_until="time", unique_expires_at=NOW)], NOW)
    ids, events = jobs.store.enqueue([request(unique_key="k"), request(unique_key="other")], NOW)
    assert first not in ids and [e.job_id for e in events] == ids
    assert jobs.store.get(first).unique_until == "expired"


def test_the_same_new_key_twice_in_one_batch_makes_one_job(jobs: Jobs) -> None:
    ids, events = jobs.store.enqueue([request(unique_key="k"), request(unique_key="k")], NOW)
    assert ids[0] == ids[1] and len(events) == 1


def test_a_finished_job_frees_its_unique_key(jobs: Jobs) -> None:
    job_id = jobs.store.enqueue([request(unique_key="k")], NOW)[0][0]
    jobs.store.request_cancel(job_id, NOW)
    again = jobs.store.enqueue([request(unique_key="k")], NOW)[0][0]
    assert again != job_id


def test_a_key_held_until_a_time_outlives_its_job(jobs: Jobs) -> None:
    job_id = jobs.store.enqueue([request(unique_key="k", unique_until="time",
                                         unique_expires_at=NOW + timedelta(hours=1))], NOW)[0][0]
    jobs.store.request_cancel(job_id, NOW)
    assert jobs.store.enqueue([request(unique_key="k")], NOW)[0] == [job_id]


def test_a_session_enqueue_is_invisible_until_the_caller_commits(jobs: Jobs) -> None:
    with jobs.store.engine.begin() as conn:
        ids, _ = jobs.store.enqueue([request()], NOW, conn=conn)
        assert jobs.store.get(ids[0]) is None
    assert jobs.status(ids[0]) == "pending"


def test_a_session_enqueue_rolled_back_leaves_no_job_and_no_event(jobs: Jobs) -> None:
    with jobs.store.engine.connect() as conn, conn.begin() as tx:
        ids, _ = jobs.store.enqueue([request(), request(unique_key="k")], NOW, conn=conn)
        tx.rollback()
    assert jobs.store.get(ids[0]) is None and jobs.log() == []
    assert jobs.store.enqueue([request(unique_key="k")], NOW)[1] != []  # the key was never taken


def test_ids_keep_growing_after_the_newest_jobs_are_deleted(jobs: Jobs) -> None:
    first = jobs.add(3)
    for job_id in first:
        jobs.store.delete(job_id, NOW)
    again = jobs.add(2)  # the bulk fast path works its ids out itself on SQLite
    assert min(again) > max(first)
    assert [jobs.get(i).id for i in again] == again
