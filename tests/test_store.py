"""Store verbs called directly: the guarded cancel, and how the store tells the layer above
which events it wrote (before they can be read by anyone else)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from runner_support import wait_for
from sqlalchemy import create_engine, text

from activejob import clock, emit
from activejob.errors import InvalidTransition, JobNotFound
from activejob.request import EnqueueRequest
from activejob.store import Store, base


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.upgrade()
    yield s
    s.dispose()


def _enqueue(store: Store, *, general: bool = False) -> int:
    """One job, by the hot path, or (`general`) by the general path, in a transaction of the store's own."""
    request = EnqueueRequest(name="store_probe", args="{}", queue="default", priority=0, run_at=clock.now(),
                             max_retries=0)
    if general:
        with store.write() as conn:
            ids, _ = store.enqueue([request], clock.now(), conn=conn)
    else:
        ids, _ = store.enqueue([request], clock.now())
    return ids[0]


def _event_types(store: Store, job_id: int) -> list[str]:
    return [e.type for e in store.events(job_id=job_id)]


# -- cancel, guarded by the state the caller saw --------------------------------------------


def test_a_cancel_expecting_another_state_changes_nothing(store: Store) -> None:
    job_id = _enqueue(store)
    with pytest.raises(InvalidTransition, match="is pending, not running"):
        store.request_cancel(job_id, clock.now(), expect=["running"])
    info = store.get(job_id)
    assert info is not None and info.status == "pending" and not info.cancel_requested
    assert _event_types(store, job_id) == ["enqueued"]

    status, records = store.request_cancel(job_id, clock.now(), expect=["pending"])
    assert status == "cancelled" and [r.type for r in records] == ["cancelled"]


def test_a_cancel_expecting_an_unfinished_state_refuses_a_finished_job(store: Store) -> None:
    job_id = _enqueue(store)
    store.request_cancel(job_id, clock.now())
    with pytest.raises(InvalidTransition, match="is cancelled, not pending or waiting or running"):
        store.request_cancel(job_id, clock.now(), expect=["pending", "waiting", "running"])
    with pytest.raises(JobNotFound):
        store.request_cancel(424242, clock.now(), expect=["pending"])
    # Without `expect`, as before: a finished job is left as it is and its state said.
    assert store.request_cancel(job_id, clock.now()) == ("cancelled", [])


def _claim_in_open_transaction(url: str, job_id: int) -> tuple[Any, Any]:
    """A claim that holds the job's row lock, not yet committed (what a worker's claim is,
    for a moment): returns (engine, connection)."""
    engine = create_engine(url)
    conn = engine.connect()
    conn.begin()
    conn.execute(text("UPDATE activejob_jobs SET status = 'running', lease_token = 't' WHERE id = :id"),
                 {"id": job_id})
    return engine, conn


def _cancel_in_thread(store: Store, job_id: int, expect: Sequence[str]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def cancel() -> None:
        try:
            box["status"] = store.request_cancel(job_id, clock.now(), expect=expect)[0]
        except Exception as error:
            box["error"] = error

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread, box


def _lock_waiters(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_guarded_cancel_judges_the_state_a_concurrent_claim_left(pg_url: str) -> None:
    # The job is pending when the cancel starts, but a claim holds its row: the cancel's
    # one UPDATE waits for it and then judges the row the claim committed. A check read
    # apart from the write would have seen "pending" and cancelled a job that runs.
    store = Store(pg_url)
    try:
        job_id = _enqueue(store)
        engine, claim = _claim_in_open_transaction(pg_url, job_id)
        thread, box = _cancel_in_thread(store, job_id, ["pending"])
        wait_for(lambda: _lock_waiters(pg_url) > 0, what="the cancel to wait for the claim's row lock")
        claim.commit()
        claim.close()
        engine.dispose()
        thread.join(10)
        assert isinstance(box.get("error"), InvalidTransition), box
        info = store.get(job_id)
        assert info is not None and info.status == "running" and not info.cancel_requested
        assert _event_types(store, job_id) == ["enqueued"]
    finally:
        store.dispose()


@pytest.mark.postgres
def test_a_cancel_of_any_unfinished_state_marks_a_job_claimed_meanwhile(pg_url: str) -> None:
    # The same race, allowing pending or running: the one UPDATE takes the branch for the
    # state it finds (running: marked for its worker), not the one a read would have chosen.
    store = Store(pg_url)
    try:
        job_id = _enqueue(store)
        engine, claim = _claim_in_open_transaction(pg_url, job_id)
        thread, box = _cancel_in_thread(store, job_id, ["pending", "running"])
        wait_for(lambda: _lock_waiters(pg_url) > 0, what="the cancel to wait for the claim's row lock")
        claim.commit()
        claim.close()
        engine.dispose()
        thread.join(10)
        assert box == {"status": "running"}
        info = store.get(job_id)
        assert info is not None and info.status == "running" and info.cancel_requested
    finally:
        store.dispose()


# -- the events-written hook ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["general", "hot"])
def test_events_are_marked_as_written_before_anyone_can_read_them(
        store: Store, db_url: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # An EventRelay in this process skips what the mark says this process wrote; it can
    # only read committed rows. So the mark must come first: inside the write.
    monkeypatch.setattr(emit, "_noting", True)  # as with an EventRelay in this process
    reader = Store(db_url)
    reader.last_event_id()  # its connection is open before the write begins
    seen: list[tuple[list[int], list[int]]] = []

    def listener(url: str, ids: Sequence[int]) -> None:
        if url == store.url:
            seen.append((list(ids), [e.id for e in reader.events_by_id(list(ids))]))

    monkeypatch.setattr(base, "_written_listeners", [*base._written_listeners, listener])
    try:
        job_id = _enqueue(store, general=path == "general")
    finally:
        reader.dispose()
    events = store.events(job_id=job_id)
    assert [ids for ids, _ in seen] == [[e.id for e in events]]
    committed_at_mark = seen[0][1]
    if path == "hot" and store.dialect == "postgresql":
        # One statement in autocommit: its event ids come with its rows, after its commit;
        # they are marked as those rows are read, before the verb returns.
        assert emit.written_here(store.url, events[0].id)
    else:
        assert committed_at_mark == []  # marked while the transaction was still open


def test_dispatch_remembers_what_the_store_wrote(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emit, "_noting", True)  # as with an EventRelay in this process
    job_id = _enqueue(store)
    (event,) = store.events(job_id=job_id)
    assert emit.written_here(store.url, event.id)
    assert not emit.written_here(store.url, 10**15)  # an id no test writes (ids restart between tests)


def test_a_process_without_an_event_relay_remembers_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers run no relay: keeping their event ids would only cost memory (up to 13 MB).
    monkeypatch.setattr(emit, "_noting", False)
    monkeypatch.setattr(emit, "_written", set())  # ids restart between tests: forget earlier ones
    job_id = _enqueue(store)
    (event,) = store.events(job_id=job_id)
    assert not emit.written_here(store.url, event.id)
