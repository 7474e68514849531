"""`WorkerStore`, the store as a worker's event loop speaks to it: each verb picks its way
(inline on the loop, the worker's own PostgreSQL connection, or a thread through the pool),
and whichever it picks, the results and the rows are the same."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
import pytest

from activejob.records import Claimed, EventRecord
from activejob.store import Outcome, ProgressUpdate, Store
from activejob.store.facade import WorkerStore, Written

from .contract import LEASE, NAME, NOW, Jobs, OtherWriter, at, completed, failed, waiting

T = TypeVar("T")
DONE = at(1)


def on_loop(store: Store, steps: Callable[[WorkerStore], Awaitable[T]], **options: Any) -> T:
    """Run `steps` with a WorkerStore of worker w1 on a fresh event loop, closed after."""

    async def main() -> T:
        ws = WorkerStore(store, worker_id="w1", names=options.pop("names", [NAME]), queues=options.pop("queues", None),
                         lease=LEASE, **options)
        try:
            with anyio.fail_after(20):
                return await steps(ws)
        finally:
            await ws.aclose()

    return anyio.run(main)


async def released_soon(writer: OtherWriter | None) -> None:
    """Let the verb meet the lock first, then let it through."""
    if writer is not None:
        await anyio.sleep(0.05)
        writer.release()


# -- claim ----------------------------------------------------------------------------------


def test_claim_takes_due_jobs_with_started_events(jobs: Jobs) -> None:
    ids = jobs.add(3)
    before = jobs.last_event()
    claimed, started = on_loop(jobs.store, lambda ws: ws.claim(2, None, NOW))
    assert [c.id for c in claimed] == ids[:2]
    assert [(e.job_id, e.type, e.data) for e in started] == [(i, "started", {"worker_id": "w1"}) for i in ids[:2]]
    assert [jobs.get(i).worker_id for i in ids] == ["w1", "w1", None]
    jobs.logged(started, after=before)


def test_claim_without_room_takes_nothing(jobs: Jobs) -> None:
    jobs.add()
    assert on_loop(jobs.store, lambda ws: ws.claim(0, None, NOW)) == ([], [])


def test_claim_takes_only_the_given_queues(jobs: Jobs) -> None:
    jobs.add(queue="default")
    mail = jobs.add(queue="mail")[0]
    claimed, _ = on_loop(jobs.store, lambda ws: ws.claim(5, ["mail"], NOW))
    assert [c.id for c in claimed] == [mail]


def test_claim_keeps_concurrency_limits(jobs: Jobs) -> None:
    ids = jobs.add(4)

    async def steps(ws: WorkerStore) -> tuple[list[int], list[int]]:
        first, _ = await ws.claim(10, None, NOW)
        second, _ = await ws.claim(10, None, NOW)
        return [c.id for c in first], [c.id for c in second]

    assert on_loop(jobs.store, steps, limits={NAME: 2}) == (ids[:2], [])


def test_claim_while_another_process_writes_waits_for_it_and_takes_the_jobs(
        jobs: Jobs, other_writer: Callable[[], OtherWriter]) -> None:
    if not jobs.sqlite:
        pytest.skip("SQLite's single write lock only")
    ids = jobs.add(2)
    writer = other_writer()

    async def steps(ws: WorkerStore) -> tuple[list[Claimed], list[EventRecord]]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(released_soon, writer)
            taken = await ws.claim(5, None, NOW)
        return taken

    claimed, started = on_loop(jobs.store, steps)
    assert [c.id for c in claimed] == ids and len(started) == 2


# -- finish ---------------------------------------------------------------------------------


Scenario = Callable[[Jobs, list[Claimed]], tuple[list[ProgressUpdate], list[Outcome]]]


def plain(_jobs: Jobs, running: list[Claimed]) -> tuple[list[ProgressUpdate], list[Outcome]]:
    """Outcomes only: the inline path (on the loop, or the worker's own PostgreSQL connection)."""
    a, b = running
    return [], [completed(a), failed(b)]


def with_progress(_jobs: Jobs, running: list[Claimed]) -> tuple[list[ProgressUpdate], list[Outcome]]:
    """Final progress to write first: the thread path."""
    a, b = running
    return [ProgressUpdate(a.id, a.lease_token, progress={"progress": 1.0})], [completed(a), failed(b)]


def with_a_waiting_parent(jobs: Jobs, running: list[Claimed]) -> tuple[list[ProgressUpdate], list[Outcome]]:
    """A parent that waits for a child: only the general path writes it, in a thread."""
    a, b = running
    parent = jobs.running(name="parent")[0]
    jobs.add(name="child", parent_id=parent.id)
    return [], [completed(a), failed(b), waiting(parent)]


def with_a_child(jobs: Jobs, running: list[Claimed]) -> tuple[list[ProgressUpdate], list[Outcome]]:
    """A child whose parent may wake: the general path for it (on SQLite, for the whole batch)."""
    a, b = running
    parent = jobs.running(name="parent")[0]
    jobs.add(name="child", parent_id=parent.id)
    child = jobs.claim(names=["child"])[0]
    jobs.store.finish([waiting(parent)], NOW)
    return [], [completed(a), failed(b), completed(child)]


SCENARIOS = pytest.mark.parametrize("scenario", [plain, with_progress, with_a_waiting_parent, with_a_child],
                                    ids=["inline", "progress", "waiting-parent", "child"])


def finish(jobs: Jobs, updates: Sequence[ProgressUpdate], outcomes: Sequence[Outcome], refill: int,
           writer: OtherWriter | None = None) -> Written:
    async def steps(ws: WorkerStore) -> Written:
        async with anyio.create_task_group() as tg:
            tg.start_soon(released_soon, writer)
            written = await ws.finish(updates, outcomes, DONE, refill=refill)
        return written

    return on_loop(jobs.store, steps)


@SCENARIOS
@pytest.mark.parametrize("refill", [0, 2])
def test_finish_writes_every_outcome_and_refills_whichever_path(jobs: Jobs, scenario: Scenario, refill: int) -> None:
    a, b = jobs.running(2)
    updates, outcomes = scenario(jobs, [a, b])
    queued = jobs.add(2)
    before = jobs.last_event()
    written, events, claimed, started = finish(jobs, updates, outcomes, refill)
    assert written == {o.job_id for o in outcomes}
    assert (jobs.status(a.id), jobs.status(b.id)) == ("completed", "failed")
    assert [c.id for c in claimed] == queued[:refill]
    assert [(e.job_id, e.type) for e in started] == [(i, "started") for i in queued[:refill]]
    assert [jobs.status(i) for i in queued] == ["running"] * refill + ["pending"] * (2 - refill)
    assert {(e.job_id, e.type) for e in events} >= {(a.id, "completed"), (b.id, "failed")}
    jobs.logged(events + started, after=before)


def test_finish_writes_final_progress_before_the_outcomes(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    updates, outcomes = with_progress(jobs, [a, b])
    _, events, _, _ = finish(jobs, updates, outcomes, 0)
    assert [(e.job_id, e.type) for e in events] == [(a.id, "progress"), (a.id, "completed"), (b.id, "failed")]
    assert jobs.get(a.id).progress == 1.0


def test_finish_of_a_child_wakes_its_parent(jobs: Jobs) -> None:
    a, b = jobs.running(2)
    _, outcomes = with_a_child(jobs, [a, b])
    parent = jobs.get(outcomes[-1].job_id).parent_id
    assert parent is not None
    _, events, _, _ = finish(jobs, [], outcomes, 0)
    assert (parent, "enqueued") in {(e.job_id, e.type) for e in events}
    assert jobs.status(parent) == "pending"


@pytest.mark.parametrize("updates", [False, True], ids=["inline", "progress"])
def test_finish_with_a_lost_lease_writes_nothing_for_that_job(jobs: Jobs, updates: bool) -> None:
    a, b = jobs.running(2)
    lost = completed(b)
    lost.token = "stale-token"
    progress = [ProgressUpdate(a.id, a.lease_token, progress={"progress": 0.5})] if updates else []
    row = jobs.get(b.id)
    written, events, _, _ = finish(jobs, progress, [completed(a), lost], 1)
    assert written == {a.id} and b.id not in {e.job_id for e in events}
    assert jobs.get(b.id) == row


def test_finish_while_another_process_writes_waits_for_it_and_writes_the_same(
        jobs: Jobs, other_writer: Callable[[], OtherWriter]) -> None:
    if not jobs.sqlite:
        pytest.skip("SQLite's single write lock only")
    a, b = jobs.running(2)
    queued = jobs.add(2)
    before = jobs.last_event()
    written, events, claimed, started = finish(jobs, [], [completed(a), failed(b)], 2, writer=other_writer())
    assert written == {a.id, b.id} and [c.id for c in claimed] == queued
    assert [(e.job_id, e.type) for e in events] == [(a.id, "completed"), (b.id, "failed")]
    jobs.logged(events + started, after=before)


def test_the_paths_leave_the_same_rows(jobs: Jobs) -> None:
    rows = []
    for scenario in (plain, with_progress):
        a, b = jobs.running(2)
        updates, outcomes = scenario(jobs, [a, b])
        finish(jobs, updates, outcomes, 0)
        for job in (a, b):
            row = jobs.get(job.id).to_dict()
            for key in ("id", "progress"):
                row.pop(key)
            rows.append(row)
    assert rows[:2] == rows[2:]


def test_finish_refills_within_concurrency_limits(jobs: Jobs) -> None:
    jobs.add(4)

    async def steps(ws: WorkerStore) -> list[Claimed]:
        claimed, _ = await ws.claim(10, None, NOW)
        return (await ws.finish([], [completed(claimed[0])], DONE, refill=3))[2]

    refilled = on_loop(jobs.store, steps, limits={NAME: 1})
    assert len(refilled) <= 1 and jobs.store.count(status="running") <= 1


# -- a limited type beside free ones ---------------------------------------------------------
# While the last general claim left no due job of a limited type, the free types are claimed
# the fast way; a wake or poll (`recheck_limits`), a limited job's end, or `recheck_after`
# seconds have the next claim look at the limited types again.

BOTH = {"names": [NAME, "free"], "limits": {NAME: 1}}


def ids(claimed: Sequence[Claimed]) -> list[int]:
    return [c.id for c in claimed]


def test_after_a_look_finds_no_limited_job_the_free_types_are_claimed_alone(jobs: Jobs) -> None:
    free = jobs.add(3, name="free")

    async def steps(ws: WorkerStore) -> tuple[list[int], list[int]]:
        first = ids((await ws.claim(1, None, NOW))[0])
        jobs.add(name=NAME)  # unannounced: no wake, no poll yet
        return first, ids((await ws.claim(5, None, NOW))[0])

    assert on_loop(jobs.store, steps, **BOTH) == (free[:1], free[1:])


def test_a_wake_has_the_next_claim_look_at_the_limited_types(jobs: Jobs) -> None:
    jobs.add(1, name="free")

    async def steps(ws: WorkerStore) -> list[int]:
        await ws.claim(1, None, NOW)
        limited = jobs.add(name=NAME)
        ws.recheck_limits()
        return [*limited, *ids((await ws.claim(5, None, NOW))[0])]

    limited, *taken = on_loop(jobs.store, steps, **BOTH)
    assert taken == [limited]


def test_the_limited_types_are_looked_at_again_after_recheck_after(jobs: Jobs) -> None:
    jobs.add(1, name="free")

    async def steps(ws: WorkerStore) -> tuple[list[int], list[int], list[int]]:
        await ws.claim(1, None, NOW)
        limited = jobs.add(name=NAME)
        early = ids((await ws.claim(5, None, at(0.5)))[0])
        return limited, early, ids((await ws.claim(5, None, at(2)))[0])

    limited, early, late = on_loop(jobs.store, steps, recheck_after=1.0, **BOTH)
    assert (early, late) == ([], limited)


def test_a_limited_jobs_end_refills_its_slot_with_the_next_limited_job(jobs: Jobs) -> None:
    first, second = jobs.add(2, name=NAME)

    async def steps(ws: WorkerStore) -> list[int]:
        running = (await ws.claim(5, None, NOW))[0]
        assert ids(running) == [first]  # the limit: one at a time
        outcome = completed(running[0])
        outcome.frees_limited_slot = True
        return ids((await ws.finish([], [outcome], DONE, refill=1))[2])

    assert on_loop(jobs.store, steps, **BOTH) == [second]


def test_a_limited_job_passed_over_for_better_ones_keeps_the_claims_general(jobs: Jobs) -> None:
    limited = jobs.add(name=NAME)[0]
    urgent = jobs.add(2, name="free", priority=5)

    async def steps(ws: WorkerStore) -> tuple[list[int], list[int]]:
        first = ids((await ws.claim(1, None, NOW))[0])
        return first, ids((await ws.claim(5, None, NOW))[0])

    first, second = on_loop(jobs.store, steps, **BOTH)
    assert first == urgent[:1] and sorted(second) == sorted([urgent[1], limited])
