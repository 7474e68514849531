"""SharedReads: the dashboard's whole-table reads, shared and kept for a few times their cost
(time passed in: each read moves a clock of the test's own by what it "costs")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from activejob.web.shared_reads import SharedReads


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reader(clock: Clock, cost: float) -> tuple[list[int], Callable[[], int]]:
    calls: list[int] = []

    def read() -> int:
        clock.now += cost
        calls.append(len(calls) + 1)
        return len(calls)

    return calls, read


def test_a_costly_read_is_reused_for_reuse_times_its_cost() -> None:
    clock = Clock()
    reads = SharedReads(costly=0.05, reuse=4.0, clock=clock)
    calls, read = reader(clock, cost=1.0)
    assert reads.get("stats", read) == 1
    clock.now += 3.9
    assert reads.get("stats", read) == 1
    clock.now += 0.2
    assert reads.get("stats", read) == 2
    assert calls == [1, 2]


def test_a_cheap_read_runs_every_time() -> None:
    clock = Clock()
    reads = SharedReads(costly=0.05, clock=clock)
    _calls, read = reader(clock, cost=0.01)
    assert [reads.get("stats", read) for _ in range(3)] == [1, 2, 3]


def test_min_age_keeps_even_a_cheap_result() -> None:
    clock = Clock()
    reads = SharedReads(costly=0.05, clock=clock)
    _calls, read = reader(clock, cost=0.0)
    assert reads.get("activity", read, min_age=1.0) == 1
    clock.now += 0.9
    assert reads.get("activity", read, min_age=1.0) == 1
    clock.now += 0.2
    assert reads.get("activity", read, min_age=1.0) == 2


def test_each_key_keeps_its_own_result() -> None:
    clock = Clock()
    reads = SharedReads(clock=clock)
    _, one = reader(clock, cost=1.0)
    _, other = reader(clock, cost=1.0)
    assert (reads.get("a", one), reads.get("b", other), reads.get("a", one)) == (1, 1, 1)


def test_the_least_recently_used_key_is_forgotten_past_the_limit() -> None:
    clock = Clock()
    reads = SharedReads(keys=2, clock=clock)
    calls, read = reader(clock, cost=1.0)
    reads.get("a", read)
    reads.get("b", read)
    reads.get("a", read)  # kept: "b" is now the least recent
    reads.get("c", read)
    assert reads.get("a", read) == 1
    assert reads.get("b", read) == 4  # forgotten, so read again
    assert calls == [1, 2, 3, 4]


def test_a_read_that_raises_keeps_nothing_and_the_next_caller_reads_again() -> None:
    clock = Clock()
    reads = SharedReads(clock=clock)

    def broken() -> int:
        clock.now += 1.0
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError, match="locked"):
        reads.get("stats", broken)
    _calls, read = reader(clock, cost=1.0)
    assert reads.get("stats", read) == 1


def test_callers_at_the_same_time_share_one_read() -> None:
    reads = SharedReads(costly=0.01, reuse=100.0)  # the real clock: these threads really wait
    started = threading.Barrier(4)
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        time.sleep(0.2)  # long enough for every other caller to arrive while it runs
        return len(calls)

    results: list[int] = []

    def viewer() -> None:
        started.wait()
        results.append(reads.get("stats", read))

    threads = [threading.Thread(target=viewer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [1, 1, 1, 1]
    assert calls == [1]


def test_callers_waiting_for_a_cheap_read_share_it_too() -> None:
    reads = SharedReads(costly=60.0)  # never kept afterwards: only those who waited share it
    release = threading.Event()
    calls: list[int] = []

    def read() -> int:
        calls.append(1)
        release.wait(10)  # the first read holds the others back until all have asked
        return len(calls)

    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(reads.get("stats", read)))
    first.start()
    while not calls:
        time.sleep(0.001)
    waiting = [threading.Thread(target=lambda: results.append(reads.get("stats", read))) for _ in range(3)]
    for t in waiting:
        t.start()
    time.sleep(0.1)  # they asked after the read began: it saw less than they want
    release.set()
    for t in [first, *waiting]:
        t.join(timeout=10)
    assert calls == [1, 1]  # one more read, shared by the three that waited
    assert sorted(results) == [1, 2, 2, 2]
