"""EventRelay over a real log: holes in the ids (transactions that commit out of order, or
never) are fetched again until they fill or `gap_timeout` passes. Commits are staged by
writing event rows with chosen ids; time moves through `activejob.clock.monotonic`, the one
clock the relay reads, so no test sleeps."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import pytest
from sqlalchemy import insert

from activejob import clock
from activejob.relay import EventRelay, RelayedEvent, Subscription
from activejob.store import Store, events

from .contract import NAME, NOW

GAP = 5.0


@dataclass
class FakeMonotonic:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMonotonic]:
    fake = FakeMonotonic()
    monkeypatch.setattr(clock, "monotonic", fake)
    yield fake


def commit(store: Store, *ids: int, type_: str = "progress") -> None:
    """Events with these ids become visible, as if their transactions committed now."""
    with store.engine.begin() as conn:
        conn.execute(insert(events), [
            {"id": i, "job_id": i, "type": type_, "name": NAME, "queue": "default", "owner": None,
             "status": "running", "attempt": 1, "data": None, "created_at": NOW} for i in ids])


def delete_log(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(events.delete())


def relay(store: Store) -> EventRelay:
    return EventRelay(store, emit_signals=False, watch=False, gap_timeout=GAP)


def poll(r: EventRelay) -> int:
    async def once() -> int:
        return await r.poll()

    return anyio.run(once)


def received(sub: Subscription, count: int) -> list[tuple[int, int]]:
    """(id, cursor) of the first `count` items `sub` hands out."""

    async def read() -> list[RelayedEvent]:
        got: list[RelayedEvent] = []
        with anyio.fail_after(5):
            async for item in sub:
                got.append(item)
                if len(got) == count:
                    break
        return got

    try:
        return [(item.id, item.cursor) for item in anyio.run(read)]
    finally:
        sub.close()


def test_events_in_order_move_the_cursor_to_the_newest(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 2, 3)
    assert poll(r) == 3
    assert r.cursor == 3


def test_the_cursor_stops_below_a_hole(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    assert poll(r) == 2
    assert r.cursor == 1


def test_a_hole_that_fills_is_delivered_and_the_cursor_moves_past_it(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    poll(r)
    monotonic.now += GAP - 0.1
    commit(store, 2, 4)
    assert poll(r) == 2
    assert r.cursor == 4


def test_a_hole_is_waited_for_until_the_gap_timeout(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    poll(r)
    monotonic.now += GAP - 0.01
    assert poll(r) == 0
    assert r.cursor == 1


def test_a_hole_older_than_the_gap_timeout_is_given_up(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    poll(r)
    monotonic.now += GAP
    poll(r)
    assert r.cursor == 3


def test_a_hole_given_up_is_not_delivered_when_it_fills_later(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    poll(r)
    monotonic.now += GAP
    poll(r)
    commit(store, 2)
    assert poll(r) == 0


def test_the_timeout_counts_from_when_the_event_above_the_hole_was_seen(
        store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 3)
    poll(r)
    monotonic.now += 3
    commit(store, 5)  # a second hole, seen later
    poll(r)
    monotonic.now += GAP - 3
    poll(r)
    assert r.cursor == 3  # 2 given up; 4 still within its time
    monotonic.now += 3
    poll(r)
    assert r.cursor == 5


def test_internal_events_move_the_cursor_but_are_not_handed_out(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    sub = r.subscribe()
    commit(store, 1, type_="checkpoint")
    commit(store, 2)
    poll(r)
    assert r.cursor == 2

    assert received(sub, 1) == [(2, 2)]


def test_each_event_is_handed_out_as_seen_with_a_cursor_that_never_skips_a_hole(
        store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    sub = r.subscribe()
    commit(store, 1, 3)
    poll(r)
    commit(store, 2, 4)
    poll(r)
    commit(store, 6)
    poll(r)
    monotonic.now += GAP
    poll(r)
    assert received(sub, 5) == [(1, 1), (3, 1), (2, 2), (4, 4), (6, 4)]


def test_an_emptied_log_is_followed_from_its_new_start(store: Store, monotonic: FakeMonotonic) -> None:
    r = relay(store)
    commit(store, 1, 2, 3)
    poll(r)
    delete_log(store)
    monotonic.now += 11  # the relay checks for a reset log at most every ten seconds
    poll(r)
    assert r.cursor == 0
    commit(store, 1)
    assert poll(r) == 1 and r.cursor == 1
