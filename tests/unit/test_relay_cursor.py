"""The relay's cursor arithmetic and subscriptions, without a database: where a consumer may
resume, how subscriptions are named and filtered, and their lifetime. The gap timer reads
the clock inside `poll()`, so it is driven in tests/store/test_relay_gaps.py."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from activejob.records import EventRecord
from activejob.relay import EventRelay, RelayedEvent, resume_cursor, subscription_key

pytestmark = pytest.mark.timeout(5)

AT = datetime(2030, 1, 1, tzinfo=UTC)


def record(event_id: int = 7, *, type_: str = "completed", job_id: int | None = 42, owner: str | None = "alice",
           batch_id: int | None = None) -> EventRecord:
    return EventRecord(id=event_id, job_id=job_id, type=type_, name="send_email", queue="mail", owner=owner,
                       status="completed", attempt=1, created_at=AT, data={"result": 3}, batch_id=batch_id)


def relay() -> EventRelay:
    # Never started: a URL that is never opened.
    return EventRelay("sqlite:///never-opened.db", emit_signals=False, watch=False)


def test_the_cursor_stays_at_what_is_settled_when_the_id_is_above_it() -> None:
    assert resume_cursor(12, after=5, settled=10) == 10


def test_the_cursor_is_the_id_when_it_is_settled() -> None:
    assert resume_cursor(8, after=5, settled=10) == 8


def test_the_cursor_is_the_id_when_nothing_is_settled() -> None:
    assert resume_cursor(12, after=5, settled=None) == 12


def test_the_cursor_never_goes_back_before_where_the_consumer_stands() -> None:
    assert resume_cursor(12, after=11, settled=10) == 11


def test_a_job_subscription_is_named_for_the_job_even_with_an_owner() -> None:
    assert subscription_key(42, "alice") == "job:42"


def test_an_owner_subscription_is_named_for_the_owner() -> None:
    assert subscription_key(None, "alice") == "owner:alice"


def test_a_subscription_to_everything_is_named_all() -> None:
    assert subscription_key(None, None) == "all"


def test_a_batch_subscription_is_named_for_the_batch_even_with_an_owner() -> None:
    assert subscription_key(None, "alice", 7) == "batch:7"
    assert subscription_key(42, None, 7) == "job:42"


def test_a_batch_subscription_matches_its_own_events_and_its_members() -> None:
    sub = relay().subscribe(batch_id=7)
    assert sub.matches(record(job_id=None, type_="batch_finished", batch_id=7))
    assert sub.matches(record(job_id=42, batch_id=7))
    assert not sub.matches(record(job_id=43, batch_id=8)) and not sub.matches(record(job_id=44))


def test_a_relayed_event_has_its_record_id_and_its_own_cursor() -> None:
    item = RelayedEvent(record(7), cursor=5)
    assert item.id == 7
    assert item.to_dict() == {
        "id": 7, "cursor": 5, "event": "completed", "job_id": 42, "batch_id": None, "name": "send_email",
        "queue": "mail",
        "owner": "alice", "status": "completed", "attempt": 1, "created_at": "2030-01-01T00:00:00+00:00",
        "data": {"result": 3},
    }


def test_a_subscription_to_everything_matches_any_public_event() -> None:
    sub = relay().subscribe()
    assert sub.matches(record(job_id=1, owner=None)) and sub.matches(record(job_id=2, owner="bob"))


def test_internal_events_match_no_subscription() -> None:
    sub = relay().subscribe()
    assert not sub.matches(record(type_="checkpoint"))


def test_a_job_subscription_matches_only_that_job() -> None:
    sub = relay().subscribe(job_id=42)
    assert sub.matches(record(job_id=42)) and not sub.matches(record(job_id=43))


def test_an_owner_subscription_matches_only_that_owner() -> None:
    sub = relay().subscribe(owner="alice")
    assert sub.matches(record(owner="alice"))
    assert not sub.matches(record(owner="bob")) and not sub.matches(record(owner=None))


def test_a_job_and_owner_subscription_needs_both() -> None:
    sub = relay().subscribe(job_id=42, owner="alice")
    assert sub.key == "job:42"
    assert sub.matches(record(job_id=42, owner="alice")) and not sub.matches(record(job_id=42, owner="bob"))


def test_a_subscription_starts_at_its_since() -> None:
    assert relay().subscribe(since=17).cursor == 17


def test_a_subscription_without_since_starts_at_the_relay_cursor() -> None:
    assert relay().subscribe().cursor == 0


def test_closing_a_subscription_unsubscribes_it() -> None:
    r = relay()
    first, second = r.subscribe(job_id=1), r.subscribe(job_id=1)
    assert r.subscribers == 2
    first.close()
    first.close()  # twice is harmless
    assert r.subscribers == 1
    second.close()
    assert r.subscribers == 0


def test_a_closed_subscription_ends_its_iteration() -> None:
    async def main() -> list[RelayedEvent]:
        sub = relay().subscribe()
        sub.close()
        with anyio.fail_after(2):
            return [item async for item in sub]

    assert anyio.run(main) == []


def test_leaving_the_async_with_closes_the_subscription() -> None:
    r = relay()

    async def main() -> None:
        async with r.subscribe(owner="alice"):
            assert r.subscribers == 1

    anyio.run(main)
    assert r.subscribers == 0


def test_a_relay_that_never_ran_has_nothing_settled() -> None:
    r = relay()
    assert (r.running, r.cursor, r.settled) == (False, 0, None)
    assert repr(r) == "<EventRelay stopped cursor=None>"
