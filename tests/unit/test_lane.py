"""`Lane`: sync entries run on threads of its own, results come back to the loop in batches,
an abandoned entry is settled once and its thread replaced. Driven on a real event loop
with tiny entries; every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import anyio
import pytest

from activejob.lane import Lane

pytestmark = pytest.mark.timeout(10)

WAIT = 5.0
MADE: list[Entry] = []


@pytest.fixture(autouse=True)
def _release_every_entry() -> Iterator[None]:
    """A test that fails mid-way still lets its threads go: none outlives it to fail a later test."""
    yield
    for entry in MADE:
        entry.release()
    for entry in MADE:
        if entry.thread is not None:
            entry.thread.join(WAIT)
    MADE.clear()


@dataclass(eq=False)
class Entry:
    """A tiny job: returns `value` once `gate` opens, noting where it ran."""

    value: int
    gate: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    settled: bool = False
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.gate.set()
        MADE.append(self)

    def hold(self) -> Entry:
        """Block in `run` until released."""
        self.gate.clear()
        return self

    def release(self) -> None:
        self.gate.set()


def run(entry: Entry) -> int:
    entry.thread = threading.current_thread()
    entry.started.set()
    if not entry.gate.wait(WAIT):
        raise AssertionError(f"entry {entry.value} was never released")
    return entry.value * 10


class Harness:
    """A lane on the running loop, and what it delivered, batch by batch."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.batches: list[list[tuple[Entry, int]]] = []
        self.delivered_on: set[int] = set()
        self._arrived = asyncio.Event()
        self.lane: Lane[Entry, int] = Lane(run, self._deliver, self.loop, name="lane-test")

    def _deliver(self, batch: list[tuple[Entry, int]]) -> None:
        self.delivered_on.add(threading.get_ident())
        self.batches.append(batch)
        self._arrived.set()

    @property
    def results(self) -> list[int]:
        return sorted(result for batch in self.batches for _entry, result in batch)

    async def until(self, count: int) -> None:
        """Wait until `count` results have been delivered."""
        with anyio.fail_after(WAIT):
            while len(self.results) < count:
                self._arrived.clear()
                await self._arrived.wait()


def on_loop(test: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        harness = Harness()
        try:
            await test(harness)
        finally:
            harness.lane.close()

    anyio.run(main)


def started(*entries: Entry) -> None:
    for entry in entries:
        assert entry.started.wait(WAIT), f"entry {entry.value} never started"


def joined(thread: threading.Thread | None) -> bool:
    assert thread is not None
    thread.join(WAIT)
    return not thread.is_alive()


def test_an_entry_runs_on_a_thread_and_its_result_comes_back_on_the_loop() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1)
        h.lane.submit(entry)
        await h.until(1)
        assert h.batches == [[(entry, 10)]]
        assert entry.thread is not None and entry.thread is not threading.current_thread()
        assert h.delivered_on == {threading.get_ident()}
        assert entry.settled

    on_loop(test)


def test_entries_run_side_by_side_on_separate_threads() -> None:
    async def test(h: Harness) -> None:
        entries = [Entry(1).hold(), Entry(2).hold()]
        for entry in entries:
            h.lane.submit(entry)
        started(*entries)  # both under way before either may return
        assert entries[0].thread is not entries[1].thread
        for entry in entries:
            entry.release()
        await h.until(2)
        assert h.results == [10, 20]

    on_loop(test)


def test_results_that_finish_while_the_loop_is_busy_arrive_in_one_batch() -> None:
    async def test(h: Harness) -> None:
        entries = [Entry(n) for n in (1, 2, 3)]
        for entry in entries:
            h.lane.submit(entry)
        # The loop is blocked here, as a busy worker's is: every result lands before it looks.
        deadline = time.monotonic() + WAIT
        while h.lane.fresh(60) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not h.lane.fresh(60)
        await h.until(3)
        assert len(h.batches) == 1 and h.results == [10, 20, 30]

    on_loop(test)


def test_an_idle_thread_takes_the_next_entry() -> None:
    async def test(h: Harness) -> None:
        first, second = Entry(1), Entry(2)
        h.lane.submit(first)
        await h.until(1)
        h.lane.submit(second)
        await h.until(2)
        assert first.thread is second.thread

    on_loop(test)


def test_threads_are_daemons_named_for_the_lane() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1)
        h.lane.submit(entry)
        await h.until(1)
        assert entry.thread is not None and entry.thread.daemon
        assert entry.thread.name.startswith("lane-test-")

    on_loop(test)


def test_an_entry_is_fresh_until_settled() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1).hold()
        assert not h.lane.fresh(60)
        h.lane.submit(entry)
        assert h.lane.fresh(60)
        assert not h.lane.fresh(0)  # handed over longer ago than a window of nothing
        entry.release()
        await h.until(1)
        assert not h.lane.fresh(60)

    on_loop(test)


def test_abandon_settles_a_running_entry_once() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1).hold()
        h.lane.submit(entry)
        started(entry)
        assert h.lane.abandon(entry) is True
        assert entry.settled
        assert h.lane.abandon(entry) is False
        entry.release()

    on_loop(test)


def test_abandon_after_the_result_was_delivered_changes_nothing() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1)
        h.lane.submit(entry)
        await h.until(1)
        assert h.lane.abandon(entry) is False

    on_loop(test)


def test_an_abandoned_entry_result_is_never_delivered_and_its_thread_leaves() -> None:
    async def test(h: Harness) -> None:
        stuck = Entry(1).hold()
        h.lane.submit(stuck)
        started(stuck)
        h.lane.abandon(stuck)
        stuck.release()
        assert joined(stuck.thread)
        follower = Entry(2)  # a delivery is a loop callback: one for the follower comes after any for stuck
        h.lane.submit(follower)
        await h.until(1)
        assert h.results == [20]

    on_loop(test)


def test_a_replacement_thread_keeps_the_concurrency_while_the_abandoned_one_still_runs() -> None:
    async def test(h: Harness) -> None:
        stuck = Entry(1).hold()
        h.lane.submit(stuck)
        started(stuck)
        h.lane.abandon(stuck)
        next_one = Entry(2)
        h.lane.submit(next_one)
        await h.until(1)  # delivered while `stuck` still holds its thread
        assert h.results == [20]
        assert next_one.thread is not stuck.thread
        assert stuck.thread is not None and stuck.thread.is_alive()
        stuck.release()

    on_loop(test)


def test_close_lets_idle_threads_go() -> None:
    async def test(h: Harness) -> None:
        entries = [Entry(1).hold(), Entry(2).hold()]
        for entry in entries:
            h.lane.submit(entry)
        started(*entries)
        for entry in entries:
            entry.release()
        await h.until(2)
        h.lane.close()
        assert all(joined(entry.thread) for entry in entries)

    on_loop(test)


def test_close_lets_a_busy_thread_finish_its_entry_then_go() -> None:
    async def test(h: Harness) -> None:
        entry = Entry(1).hold()
        h.lane.submit(entry)
        started(entry)
        h.lane.close()
        entry.release()
        await h.until(1)
        assert h.results == [10]
        assert joined(entry.thread)

    on_loop(test)


def test_a_lane_takes_entries_again_after_close() -> None:
    async def test(h: Harness) -> None:
        h.lane.close()
        entry = Entry(3)
        h.lane.submit(entry)
        await h.until(1)
        assert h.results == [30]

    on_loop(test)

