"""Unique keys under concurrency: exactly one holder per key, whoever writes at the same time.

PostgreSQL lets another transaction commit between two statements of an enqueue; those
moments are made to happen here by committing from another connection just before the
enqueue's next statement runs. Many threads then enqueue one key at once, on both databases.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from activejob.store import Store
from activejob.store.enqueue import UniqueKeyHeld

from .contract import NOW, Jobs, at, request
from .races import before_statement, elsewhere, only_pg


def general(store: Store, new: list[Any]) -> tuple[list[int], list[Any]]:
    """The general path (a caller's transaction), whose statements the hooks above see: a job
    alone takes the one-statement fast path, in which nothing can commit in between."""
    with store.engine.begin() as conn:
        return store.enqueue(new, NOW, conn=conn)


def test_a_holder_that_finishes_between_the_insert_and_the_lookup_makes_way_for_the_new_job(jobs: Jobs) -> None:
    only_pg(jobs)
    (first,), _ = jobs.store.enqueue([request(unique_key="k")], NOW)
    finish = elsewhere(jobs.store, "UPDATE activejob_jobs SET status = 'completed' WHERE id = :id", id=first)
    with before_statement(jobs.store, "SELECT", finish) as seen:
        (again,), events = general(jobs.store, [request(unique_key="k")])
    assert seen and again != first and [e.type for e in events] == ["enqueued"]


def test_a_holder_claimed_before_replace_updates_it_is_left_as_it_is(jobs: Jobs) -> None:
    only_pg(jobs)
    (first,), _ = jobs.store.enqueue([request(unique_key="k")], NOW)
    claim = elsewhere(jobs.store, "UPDATE activejob_jobs SET status = 'running' WHERE id = :id", id=first)
    with before_statement(jobs.store, "UPDATE", claim) as seen:
        ids, events = general(jobs.store, [request(unique_key="k", unique_mode="replace", args='{"n": 2}')])
    assert seen and ids == [first] and events == []
    assert jobs.get(first).args == {"n": 1}


def test_a_holder_claimed_before_replace_makes_way_when_held_until_started(jobs: Jobs) -> None:
    only_pg(jobs)
    (first,), _ = jobs.store.enqueue([request(unique_key="k", unique_until="started")], NOW)
    claim = elsewhere(jobs.store, "UPDATE activejob_jobs SET status = 'running' WHERE id = :id", id=first)
    with before_statement(jobs.store, "UPDATE", claim):
        (again,), events = general(
            jobs.store, [request(unique_key="k", unique_until="started", unique_mode="replace", args='{"n": 2}')])
    assert again != first and [e.type for e in events] == ["enqueued"]
    assert (jobs.get(first).args, jobs.get(again).args) == ({"n": 1}, {"n": 2})


# -- many enqueuers, one key --------------------------------------------------------------

THREADS = 8


def hammer(store: Store, make: Callable[[int], Any], rounds: int = 5) -> list[Any]:
    """THREADS threads enqueue `make(thread)` at the same moment, `rounds` times each; what each call gave."""
    start = threading.Barrier(THREADS)
    results: list[Any] = []
    lock = threading.Lock()

    def enqueuer(n: int) -> None:
        start.wait(10)
        for _ in range(rounds):
            try:
                got: Any = store.enqueue([make(n)], NOW)[0][0]
            except UniqueKeyHeld as held:
                got = held
            with lock:
                results.append(got)

    threads = [threading.Thread(target=enqueuer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == THREADS * rounds
    return results


def held(jobs: Jobs, key: str = "k") -> list[int]:
    return [j.id for j in jobs.store.list_jobs(limit=1000) if j.unique_key == key and j.status == "pending"]


@pytest.mark.parametrize("mode", ["skip", "replace", "debounce"])
def test_many_threads_enqueueing_one_key_make_exactly_one_job(jobs: Jobs, mode: str) -> None:
    results = hammer(jobs.store, lambda n: request(unique_key="k", unique_mode=mode, args=f'{{"n": {n}}}',
                                                   run_at=at(n)))
    assert held(jobs) == list(set(results)) and len(jobs.store.list_jobs()) == 1


def test_many_threads_in_raise_mode_leave_one_job_and_refuse_every_other_call(jobs: Jobs) -> None:
    results = hammer(jobs.store, lambda n: request(unique_key="k", unique_mode="raise"))
    made = [r for r in results if isinstance(r, int)]
    assert len(made) == 1 and held(jobs) == made
    assert {r.holder_id for r in results if isinstance(r, UniqueKeyHeld)} == set(made)


def test_many_threads_meeting_an_expired_holder_release_it_once_and_make_one_job(jobs: Jobs) -> None:
    (first,), _ = jobs.store.enqueue([request(unique_key="k", unique_until="time", unique_expires_at=NOW)], NOW)
    results = hammer(jobs.store, lambda n: request(unique_key="k", unique_until="time",
                                                   unique_expires_at=at(3600)), rounds=2)
    fresh = set(results) - {first}
    assert len(fresh) == 1 and set(results) == fresh
    assert sorted(held(jobs)) == sorted([first, *fresh]), "the expired holder's job stays, without the key"


# -- many enqueuers, many keys ------------------------------------------------------------

@pytest.mark.parametrize("held", [False, True], ids=["new keys", "held keys replaced"])
def test_bulk_enqueues_taking_the_same_keys_in_opposite_orders_do_not_deadlock(jobs: Jobs, held: bool) -> None:
    """Each call takes its keys in one order whatever order they are given in: two calls
    given the same keys in opposite orders would otherwise each hold a key the other waits for."""
    keys = [f"k{n}" for n in range(100)]
    mode = "replace" if held else "skip"
    if held:
        jobs.store.enqueue([request(unique_key=f"{key}-{n}") for n in range(10) for key in keys], NOW)
    ids: dict[str, list[list[int]]] = {"forward": [], "backward": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def enqueuer(way: str) -> None:
        for n in range(10):
            order = [f"{key}-{n}" for key in (keys if way == "forward" else keys[::-1])]
            start.wait(10)
            try:
                got, _ = jobs.store.enqueue([request(unique_key=key, unique_mode=mode, args=f'{{"way": "{way}"}}')
                                             for key in order], NOW)
            except BaseException as error:  # the deadlock PostgreSQL detects, were keys taken in call order
                errors.append(error)
                return
            ids[way].append(got if way == "forward" else got[::-1])

    threads = [threading.Thread(target=enqueuer, args=(way,)) for way in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert ids["forward"] == ids["backward"], "each key's one job, whichever call wrote it"
    assert len(jobs.store.list_jobs(limit=2000)) == 1000
