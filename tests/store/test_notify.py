"""PostgreSQL: what a write wakes in other processes, delivered when it commits. Every write
that appends events wakes the EventRelays (`activejob_events`); one that makes a job due
wakes idle workers too (`activejob`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from activejob import dialects
from activejob.store import EVENTS_CHANNEL

from .contract import NOW, Jobs, at, request
from .races import only_pg


@pytest.fixture
def heard(jobs: Jobs) -> Iterator[Callable[[], set[str]]]:
    """The channels notified since the last call, as a listening process hears them."""
    only_pg(jobs)
    listener = psycopg.connect(dialects.pg_dsn(jobs.store.url), autocommit=True)
    listener.execute(f"LISTEN {EVENTS_CHANNEL}")
    listener.execute(f"LISTEN {dialects.NOTIFY_CHANNEL}")

    def channels() -> set[str]:
        return {n.channel for n in listener.notifies(timeout=0.2)}

    try:
        yield channels
    finally:
        listener.close()


BOTH = {EVENTS_CHANNEL, dialects.NOTIFY_CHANNEL}


def test_an_enqueue_by_the_general_path_wakes_workers_and_relays(jobs: Jobs, heard: Callable[[], set[str]]) -> None:
    first = jobs.add()[0]
    heard()
    jobs.store.enqueue([request(depends_on=[first]), request(unique_key="k")], NOW)
    assert heard() == BOTH


def test_a_retry_by_request_wakes_workers_and_relays(jobs: Jobs, heard: Callable[[], set[str]]) -> None:
    job_id = jobs.add()[0]
    jobs.store.request_cancel(job_id, NOW)
    heard()
    jobs.store.retry_job(job_id, at(1))
    assert heard() == BOTH


def test_a_cancel_wakes_only_relays(jobs: Jobs, heard: Callable[[], set[str]]) -> None:
    job_id = jobs.add()[0]
    heard()
    jobs.store.request_cancel(job_id, NOW)
    assert heard() == {EVENTS_CHANNEL}


def test_a_write_that_changes_nothing_wakes_nobody(jobs: Jobs, heard: Callable[[], set[str]]) -> None:
    jobs.add()
    heard()
    assert jobs.store.retry_failed(NOW) == []  # no failed job to run again
    assert heard() == set()
