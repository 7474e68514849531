"""The charts' series, rebuilt from the event log (`Store.activity`, SQLite and PostgreSQL),
and the `/api/activity` endpoint that serves them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from activejob import JobQueue
from activejob.records import Claimed
from activejob.store import NewJob, Outcome, Store

from .conftest import TestClient
from .jobs import Fail, Quick

NOW = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)  # half way through the window's last minute
LAST = 59  # the index of the current minute in a 60-minute window


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def minute(minutes_ago: int) -> int:
    """The index, in the window, of the minute `minutes_ago` minutes before the current one."""
    return LAST - minutes_ago


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.upgrade()
    try:
        yield s
    finally:
        s.dispose()


def enqueue(store: Store, when: datetime, count: int = 1, *, queue: str = "default",
            run_at: datetime | None = None) -> list[int]:
    requests = [NewJob(name="chart_job", args="{}", queue=queue, priority=0, run_at=run_at or when, max_retries=0)
                for _ in range(count)]
    return store.enqueue(requests, when)[0]


def claim(store: Store, when: datetime, limit: int = 1) -> list[Claimed]:
    return store.claim(worker_id="w1", names=["chart_job"], queues=None, limit=limit, now=when, lease=3600)[0]


def end(store: Store, job: Claimed, status: str, when: datetime) -> None:
    store.finish([Outcome(job.id, job.lease_token, status, status)], when)


def test_finished_jobs_are_counted_per_minute_by_status(store: Store) -> None:
    enqueue(store, ago(10), 3)
    done, broken, stopped = claim(store, ago(9), 3)
    end(store, done, "completed", ago(3))
    end(store, broken, "failed", ago(1))
    end(store, stopped, "cancelled", ago(1))
    finished = store.activity(NOW)["finished"]
    assert finished["completed"][minute(3)] == 1 and sum(finished["completed"]) == 1
    assert finished["failed"][minute(1)] == 1 and sum(finished["failed"]) == 1
    assert finished["cancelled"][minute(1)] == 1 and sum(finished["cancelled"]) == 1


def test_the_window_is_sixty_minutes_ending_now(store: Store) -> None:
    series = store.activity(NOW)
    assert len(series["minutes"]) == 60 and len(series["finished"]["completed"]) == 60
    assert series["minutes"][0] == "2030-01-01T11:01:00+00:00" and series["minutes"][-1] == "2030-01-01T12:00:00+00:00"


def test_events_before_the_window_are_not_counted(store: Store) -> None:
    enqueue(store, ago(120))
    end(store, claim(store, ago(90))[0], "completed", ago(61))
    enqueue(store, ago(5))
    end(store, claim(store, ago(4))[0], "completed", ago(2))
    assert sum(store.activity(NOW)["finished"]["completed"]) == 1


def test_queue_depth_is_rebuilt_backwards_from_the_pending_count(store: Store) -> None:
    enqueue(store, ago(10), 3, queue="mail")
    claim(store, ago(5))
    depth = store.activity(NOW)["queues"]["mail"]["depth"]
    assert depth[minute(11)] == 0  # before the enqueue
    assert depth[minute(10)] == depth[minute(6)] == 3
    assert depth[minute(5)] == depth[LAST] == 2


def test_a_cancelled_pending_job_leaves_the_depth_but_a_cancelled_running_one_never_was_in_it(
        store: Store) -> None:
    enqueue(store, ago(10), 3)
    running = claim(store, ago(8))[0]
    store.request_cancel(running.id, ago(6))
    end(store, running, "cancelled", ago(6))
    pending = enqueue(store, ago(7))[0]
    store.request_cancel(pending, ago(4))
    depth = store.activity(NOW)["queues"]["default"]["depth"]
    assert [depth[minute(m)] for m in (11, 10, 8, 7, 6, 4, 0)] == [0, 3, 2, 3, 3, 2, 2]


def test_a_retried_job_comes_back_into_the_depth_and_a_deleted_one_leaves_it(store: Store) -> None:
    first, second = enqueue(store, ago(10), 2)
    broken = claim(store, ago(9))[0]
    end(store, broken, "failed", ago(9))
    store.retry_failed(ago(3))
    store.delete(second, ago(2))
    depth = store.activity(NOW)["queues"]["default"]["depth"]
    # (Before its enqueue, the deleted job's history went with it: only the minutes after count.)
    assert [depth[minute(m)] for m in (10, 9, 3, 2)] == [2, 1, 2, 1]
    assert broken.id == first


def test_oldest_pending_age_follows_the_job_that_waited_longest(store: Store) -> None:
    enqueue(store, ago(10), queue="mail")
    claim(store, ago(4))
    later = enqueue(store, ago(2), queue="mail")[0]
    age = store.activity(NOW)["queues"]["mail"]["oldest_age"]
    assert age[minute(11)] == 0  # nothing was due yet
    assert age[minute(6)] == pytest.approx(270)  # at 11:55:00, due since 11:50:30
    assert age[minute(3)] == 0  # the first one started at 11:56:30; the next is due at 11:58:30
    assert age[minute(2)] == pytest.approx(30)
    assert age[LAST] == pytest.approx(120)
    assert store.get(later) is not None


def test_a_job_scheduled_for_later_is_not_waiting_before_it_is_due(store: Store) -> None:
    enqueue(store, ago(10), run_at=ago(3))
    age = store.activity(NOW)["queues"]["default"]["oldest_age"]
    assert age[minute(5)] == 0
    assert age[LAST] == pytest.approx(3 * 60)


def test_the_api_serves_the_series(queue: JobQueue, client: TestClient) -> None:
    Quick.perform_later(value=1)
    Fail.perform_later()
    queue.run_until_idle()
    Quick.set(queue="mail").perform_later(value=2)
    body = client.get("/api/activity").json()
    assert sum(body["finished"]["completed"]) == 1 and sum(body["finished"]["failed"]) == 1
    assert body["queues"]["mail"]["depth"][-1] == 1
    assert len(body["minutes"]) == 60


def test_a_viewer_token_may_not_read_the_series(queue: JobQueue) -> None:
    from activejob.web import create_app, viewer_token

    with TestClient(create_app(queue, secret="s" * 32)) as c:
        token = viewer_token("s" * 32, owner="alice")
        assert c.get("/api/activity", headers={"Authorization": f"Bearer {token}"}).status_code == 403
