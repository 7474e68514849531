"""Claims by type (PostgreSQL): behind a big due backlog of types a worker does not run, its
fast claims read each of its types' own index instead of walking the due index past the
backlog (`per_type`, switched on by `WorkerStore.note_due`). They take the same jobs, in the
same order, as the walk would."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import psycopg
import pytest
from sqlalchemy import text

from activejob.dialects import pg_dsn
from activejob.store import Store
from activejob.store.facade import PER_TYPE_AFTER, WorkerStore
from activejob.store.sql import PG_PICK_ANY_QUEUE, pg_pick_names

from .contract import LEASE, NOW, Jobs, at, completed

pytestmark = pytest.mark.postgres

MINE = ("mine_a", "mine_b")


@pytest.fixture
def pg_jobs(pg_url: str) -> Iterator[Jobs]:
    store = Store(pg_url)
    store.upgrade()
    try:
        yield Jobs(store)
    finally:
        store.dispose()


def claim(jobs: Jobs, limit: int, per_type: bool, *, worker: str = "w1") -> list[int]:
    claimed, _started = jobs.store.claim(worker_id=worker, names=list(MINE), queues=None, limit=limit, now=NOW,
                                         lease=LEASE, per_type=per_type)
    return [c.id for c in claimed]


def mixed(jobs: Jobs) -> list[int]:
    """Jobs of both types of ours among others', in an order that is neither by id nor by
    type; the ids of ours in claim order (priority, then run time, then id)."""
    jobs.add(3, name="theirs", priority=9)
    low_a = jobs.add(name="mine_a", priority=0)[0]
    late_b = jobs.add(name="mine_b", priority=5, run_at=at(-1))[0]
    jobs.add(name="theirs", priority=5, run_at=at(-3))
    early_a = jobs.add(name="mine_a", priority=5, run_at=at(-2))[0]
    tie_b = jobs.add(name="mine_b", priority=5, run_at=at(-2))[0]
    jobs.add(name="mine_a", run_at=at(60))  # not due
    jobs.store.pause_queue("paused", NOW)
    jobs.add(name="mine_b", queue="paused", priority=9)
    return [early_a, tie_b, late_b, low_a]


@pytest.mark.parametrize("per_type", [False, True], ids=["walk", "by type"])
def test_a_claim_takes_our_due_jobs_best_first_either_way(pg_jobs: Jobs, per_type: bool) -> None:
    order = mixed(pg_jobs)
    assert [claim(pg_jobs, 1, per_type)[0] for _ in range(4)] == order
    assert claim(pg_jobs, 5, per_type) == []  # the future job and the paused queue's stay


def test_a_claim_by_type_takes_the_best_of_all_types_not_of_each(pg_jobs: Jobs) -> None:
    order = mixed(pg_jobs)
    assert sorted(claim(pg_jobs, 3, True)) == sorted(order[:3])


def test_a_claim_by_type_skips_jobs_another_claim_holds(pg_jobs: Jobs) -> None:
    first, second = pg_jobs.add(2, name="mine_a")
    with pg_jobs.store.engine.begin() as other:  # another worker's claim, not yet committed
        other.execute(text("SELECT id FROM activejob_jobs WHERE id = :id FOR UPDATE"), {"id": first})
        assert claim(pg_jobs, 2, True, worker="w2") == [second]


def test_a_refill_by_type_takes_what_the_walk_would(pg_jobs: Jobs) -> None:
    pg_jobs.add(name="mine_a", run_at=at(-9))
    running = pg_jobs.store.claim(worker_id="w1", names=["mine_a"], queues=None, limit=1, now=at(-9),
                                  lease=LEASE)[0]
    order = mixed(pg_jobs)
    written, _events, claimed, _started = pg_jobs.store.finish_and_claim(
        [completed(running[0])], NOW, worker_id="w1", names=list(MINE), queues=None, limit=2, lease=LEASE,
        per_type=True)
    assert written == {running[0].id}
    assert [c.id for c in claimed] == sorted(order[:2])


def plan(jobs: Jobs, pick: str) -> str:
    """What the pick did, run as a worker's claims run: prepared, with the generic plan."""
    sql = pick.replace("%(now)s", "$1").replace("%(limit)s", "$2").replace("%(names)s", "$3")
    with psycopg.connect(pg_dsn(jobs.store.url)) as c:  # a session of its own: the PREPARE ends with it
        c.execute("SET plan_cache_mode = force_generic_plan")
        c.execute(f"PREPARE pick(timestamptz, bigint, text[]) AS {sql}".replace("%", "%%"))
        rows = c.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
                         f"EXECUTE pick('{NOW.isoformat()}', 4, ARRAY['mine_a'])").fetchall()
        c.rollback()  # EXPLAIN ANALYZE took the row locks
    return "\n".join(r[0] for r in rows)


def test_a_claim_by_type_reads_none_of_the_backlog_the_walk_reads(pg_jobs: Jobs) -> None:
    pg_jobs.add(2_000, name="theirs", run_at=at(-3600))
    pg_jobs.add(4, name="mine_a")
    with pg_jobs.store.engine.begin() as c:
        c.exec_driver_sql("ANALYZE activejob_jobs")
    walk, by_type = plan(pg_jobs, PG_PICK_ANY_QUEUE), plan(pg_jobs, pg_pick_names(["mine_a"]))
    assert "Rows Removed by Filter: 2000" in walk
    assert "ix_activejob_jobs_name_due" in by_type and "Rows Removed by Filter" not in by_type


def note_due_on(store: Store, due: dict[str, int], **options: object) -> bool:
    async def main() -> bool:
        ws = WorkerStore(store, worker_id="w1", names=list(MINE), lease=LEASE,
                         queues=options.pop("queues", None), **options)  # type: ignore[arg-type]
        try:
            ws.note_due(due)
            return ws.per_type
        finally:
            await ws.aclose()

    return anyio.run(main)


def test_claims_go_by_type_once_other_types_outnumber_ours_past_the_threshold(pg_jobs: Jobs) -> None:
    threshold = PER_TYPE_AFTER * len(MINE)
    assert note_due_on(pg_jobs.store, {"theirs": threshold + 1, "mine_a": 10**6}) is True
    assert note_due_on(pg_jobs.store, {"theirs": threshold, "mine_a": 5}) is False
    assert note_due_on(pg_jobs.store, {"mine_a": 10**6}) is False


def test_workers_of_named_queues_keep_their_queue_branches(pg_jobs: Jobs) -> None:
    assert note_due_on(pg_jobs.store, {"theirs": 10**6}, queues=["mail"]) is False


def test_sqlite_claims_never_go_by_type(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.upgrade()
    try:
        assert note_due_on(store, {"theirs": 10**6}) is False
    finally:
        store.dispose()


def test_a_claim_by_type_takes_types_whose_names_need_quoting(pg_jobs: Jobs) -> None:
    odd = "it's 100%_done"
    wanted = pg_jobs.add(name=odd)
    claimed, _started = pg_jobs.store.claim(worker_id="w1", names=[odd], queues=None, limit=2, now=NOW,
                                            lease=LEASE, per_type=True)
    assert [c.id for c in claimed] == wanted


def test_a_worker_claims_by_type_on_its_own_connection_too(pg_jobs: Jobs) -> None:
    odd = "it's 100%_done"
    wanted = pg_jobs.add(2, name=odd)

    async def main() -> list[int]:
        ws = WorkerStore(pg_jobs.store, worker_id="w1", names=[odd], queues=None, lease=LEASE)
        ws.per_type = True
        try:
            claimed, _started = await ws.claim(1, None, NOW)
            _written, _events, refilled, _ = await ws.finish([], [completed(claimed[0])], at(1), refill=1)
            return [c.id for c in claimed + refilled]
        finally:
            await ws.aclose()

    assert anyio.run(main) == wanted
