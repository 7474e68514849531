"""A batch's cancel against members joining it from another process at the same moment."""

from __future__ import annotations

from activejob.store import Store

from .contract import NOW, Jobs, at, request
from .races import before_statement, only_pg


def test_a_member_joining_while_its_batch_is_cancelled_is_cancelled_with_it(jobs: Jobs) -> None:
    only_pg(jobs)
    batch = jobs.store.create_batch(description=None, owner=None, callbacks=None, now=NOW)
    (first,), _ = jobs.store.enqueue([request(batch_id=batch)], NOW)
    jobs.store.seal_batch(batch, NOW)  # its block has ended; a member may still add a sibling
    joined: list[int] = []

    def join() -> None:  # another process adds a member just as the cancel starts writing
        other = Store(jobs.store.url)
        try:
            joined.extend(other.enqueue([request(batch_id=batch)], NOW)[0])
        finally:
            other.dispose()

    with before_statement(jobs.store, "UPDATE ACTIVEJOB_BATCHES", join) as seen:
        running, events = jobs.store.cancel_batch(batch, at(1))
    assert seen and joined and running == []
    assert [jobs.get(i).status for i in (first, *joined)] == ["cancelled", "cancelled"]
    assert sorted(e.job_id for e in events if e.type == "cancelled") == [first, *joined]
    info = jobs.store.get_batch(batch)
    assert info is not None and info.finished_at is not None and info.cancelled == 2
