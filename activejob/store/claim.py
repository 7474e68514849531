"""claim: take due jobs for a worker, under a fresh lease, with their `started` events."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.engine import Connection

from .. import clock
from ..models import DEFAULT_QUEUE
from ..records import Claimed, EventRecord
from .base import NO_PROGRESS, PENDING, RUNNING, jobs, new_lease_token, start_data
from .dbapi import PgCall, RawAccess, WouldBlock
from .limits import (
    LIMITS_LOCK,
    GeneralClaim,
    Look,
    due_jobs,
    limited_picks,
    one_queue,
    rate_book,
    running_counts,
    within_limits,
)
from .rates import RateLimits, prune_rate_starts
from .sql import (
    PG_CLAIM,
    PG_EVENTS_NOTIFY_JOIN,
    pg_pick,
    pick_key,
    sqlite_claim,
    sqlite_claim_found,
    sqlite_pick,
    sqlite_ts,
)

LONG_LOOK = 100
"""Thousands of SQLite steps a claim may take looking for its jobs under the write lock
before this store's claims look first, in a read transaction, until LOOK_FIRST_FOR seconds
after the last look that walked as long (in either transaction). A
claim walks the due index past due jobs it cannot take (of types its worker does not import,
say, after a deploy added one), about six steps a job: behind 100,000 such jobs, tens of
milliseconds in which every enqueue and outcome of every process waits for the lock. A claim of a few jobs
normally takes a few hundred steps, and then one statement is cheapest. Counted in steps
rather than time, so that a busy machine does not trip it."""
LOOK_FIRST_FOR = 60.0

class Claiming(RawAccess):
    """claim, one statement per dialect."""

    _look_first_until = float("-inf")  # see LONG_LOOK

    def claim(self, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None,
              limit: int, now: datetime, lease: float, nowait: bool = False, per_type: bool = False
              ) -> tuple[list[Claimed], list[EventRecord]]:
        """Take up to `limit` due jobs, highest priority then oldest first, in one statement.
        `per_type`: on PostgreSQL, a worker of every queue reads each type's own index
        (sql.pg_pick_names) rather than walking the due index past other types."""
        if limit <= 0 or not names:
            return [], []
        return self._claim_fast(worker_id, names, queues, limit, now, lease, nowait=nowait, per_type=per_type)

    def claim_limited(self, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                      now: datetime, lease: float, limits: Mapping[str, int] | None = None,
                      per_key: Collection[str] = (), rates: RateLimits | None = None
                      ) -> tuple[list[Claimed], list[EventRecord]]:
        """`claim`, keeping job types under their `concurrency_limit` across all workers (for
        the types in `per_key`, each concurrency key of the type under it), and every type
        and queue of `rates` under its rate limit (`claim_general`).

        One transaction: on PostgreSQL an advisory lock first makes claims that involve
        limited types take turns, so each counts the running jobs the previous one
        committed (on SQLite the write lock does that). Each limited type with room is
        asked for no more than its room, and keys that are full are not asked for at all,
        so a backlog of one type or key never hides the others.
        """
        claimed, started, *_ = self.claim_general(
            worker_id=worker_id, names=names, queues=queues, limit=limit, now=now, lease=lease, limits=limits,
            per_key=per_key, rates=rates)
        return claimed, started

    def claim_general(self, *, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                      now: datetime, lease: float, limits: Mapping[str, int] | None = None,
                      per_key: Collection[str] = (), rates: RateLimits | None = None) -> GeneralClaim:
        """`claim_limited`, also saying when a rate limit that holds back due jobs next has
        room (None when none does), for the worker to look again then.

            store.claim_general(worker_id="w1", names=["send_email"], queues=None, limit=5, now=now,
                                lease=30, rates=RateLimits(types={"send_email": (10, timedelta(seconds=1))}))
        """
        if limit <= 0 or not names:
            return GeneralClaim([], [], None)
        limits = dict(limits or {})
        token = new_lease_token()
        expires = now + timedelta(seconds=lease)
        ahead: Look | None = None
        if self.dialect == "sqlite" and self.looks_first():
            # A limited type's look walks SQLite's due index past other types' due jobs (an
            # index by type would cost every enqueue a seventh): 300 ms behind half a million.
            # Once one did (LONG_LOOK), looks are taken in a read transaction, which holds back
            # no writer, rather than under the one write lock, which would stall every enqueue
            # and outcome meanwhile. The write transaction then counts again and keeps only
            # what is still due and pending.
            with self.read() as r:
                before = self.steps_here()
                ahead = self._look(r, names, queues, limit, now, limits, per_key, rates)
                self._note_look(before)
        with self.write() as c:
            if self.dialect == "postgresql":
                c.execute(select(func.pg_advisory_xact_lock(LIMITS_LOCK)))
            if ahead is None:
                before = self.steps_here()
                look = self._look(c, names, queues, limit, now, limits, per_key, rates)
                self._note_look(before)
            else:
                ids = [r.id for r in ahead.candidates]
                still = list(c.execute(due_jobs(now, queues).where(jobs.c.id.in_(ids))).all()) if ids else []
                look = Look(still, ahead.limited_left, running_counts(c, limits),
                            rate_book(c, rates, names, queues, now))
            candidates, limited_left, running, book = look
            chosen, unseen = within_limits(candidates, limit, limits, per_key, running, book)
            limited_left = limited_left or any(r.name in limits or r.name in book.types for r in unseen)
            frees_at = book.frees_at()
            if frees_at is not None and len(chosen) == limit:
                frees_at = None  # a full claim looks again at once anyway
            if frees_at is not None:
                left = due_jobs(now, queues).where(jobs.c.name.in_(list(names)),
                                                   jobs.c.id.not_in([r.id for r in chosen]))
                if c.execute(left.limit(1)).first() is None:
                    frees_at = None  # nothing due is held back
            if not chosen:
                return GeneralClaim([], [], frees_at, limited_left)
            rows = sorted(c.execute(
                update(jobs).where(jobs.c.id.in_([r.id for r in chosen]), jobs.c.status == PENDING)
                .values(status=RUNNING, attempts=jobs.c.attempts + 1, worker_id=worker_id, lease_token=token,
                        lease_expires_at=expires, started_at=now, cancel_requested=False, **NO_PROGRESS)
                .returning(jobs.c.id, jobs.c.name, jobs.c.queue, jobs.c.owner, jobs.c.args, jobs.c.attempts,
                           jobs.c.max_retries, jobs.c.checkpoint, jobs.c.parent_id, jobs.c.batch_id,
                           jobs.c.args_version, jobs.c.meta)).all(), key=lambda r: r.id)
            by_id = {r.id: r for r in chosen}
            book.record(c, [(r.name, by_id[r.id].rate_key, r.queue) for r in rows])
            recorded = self._append(c, [
                {"job_id": r.id, "type": "started", "name": r.name, "queue": r.queue, "owner": r.owner,
                 "status": RUNNING, "attempt": r.attempts, "data": start_data(worker_id), "created_at": now}
                for r in rows])
        claimed, started = self._claimed([(*r[:9], e.id, *r[9:]) for r, e in zip(rows, recorded, strict=True)],
                                         token, worker_id, now)
        return GeneralClaim(claimed, started, frees_at, limited_left)

    def _look(self, c: Connection, names: Sequence[str], queues: Sequence[str] | None, limit: int, now: datetime,
              limits: Mapping[str, int], per_key: Collection[str], rates: RateLimits | None) -> Look:
        """The candidates of a general claim: for each limited type with room, and for the
        other types (see _limited_picks), its first due jobs in claim order."""
        running = running_counts(c, limits)
        book = rate_book(c, rates, names, queues, now)
        due = due_jobs(now, queues)
        full_queues = [q for q, room in book.queue_rooms().items() if room <= 0]
        if full_queues:
            due = due.where(jobs.c.queue.not_in(full_queues))
        # Each named queue is asked on its own, from its own index: PostgreSQL's queue
        # index (see sql.pg_pick_queues), or on SQLite the named-queue index, which the
        # `queue <> 'default'` term lets it use (the default queue's from the due index).
        by_queue = [one_queue(q, self.dialect) for q in dict.fromkeys(queues)] if queues else [true()]
        candidates: list[Any] = []
        limited_left = False  # a limited type's look that came back full may have left more
        for where, most, is_limited in limited_picks(names, limit, limits, per_key, running, book):
            for in_queue in by_queue:
                pick = due.where(where, in_queue).order_by(jobs.c.priority.desc(), jobs.c.run_at, jobs.c.id).limit(most)
                if self._skip_locked:
                    pick = pick.with_for_update(skip_locked=True)
                rows = c.execute(pick).all()
                limited_left = limited_left or (is_limited and len(rows) == most)
                candidates += rows
        return Look(candidates, limited_left, running, book)

    def prune_rate_starts(self, rates: RateLimits, now: datetime) -> int:
        """Delete the rate-limit starts of `rates` that left their window; how many."""
        if not rates:
            return 0
        with self.write() as c:
            return prune_rate_starts(c, rates, now)

    def _claim_fast(self, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                    now: datetime, lease: float, *, nowait: bool = False, cur: Any = None, per_type: bool = False
                    ) -> tuple[list[Claimed], list[EventRecord]]:
        if self.dialect == "postgresql":
            return self._pg_run(self.pg_claim_call(worker_id, names, queues, limit, now, lease, per_type))
        queues = list(dict.fromkeys(queues or ()))
        defaults = tuple(q == DEFAULT_QUEUE for q in queues)
        now_s = sqlite_ts(now)
        picks: list[Any] = [value for queue in queues for value in (queue, now_s, *names, limit)] if queues \
            else [now_s, *names]
        picks.append(limit)
        head = (worker_id, new_lease_token(), sqlite_ts(now + timedelta(seconds=lease)), now_s)
        if cur is None and self.looks_first():
            if nowait:  # the look may be long: not on the caller's event loop
                raise WouldBlock("this worker's claims look first, in a read transaction")
            return self._claim_found(self._find(len(names), defaults, picks), head, now)
        skey = ("claim", len(names), defaults)
        sql = self._sql.get(skey)
        if sql is None:
            sql = self._sql[skey] = sqlite_claim(len(names), defaults)
        with nullcontext(cur) if cur is not None else self._sqlite_tx(nowait=nowait) as cur:
            before = self.steps_here()
            rows = cur.execute(sql, (*head, *picks)).fetchall()
            self._note_look(before)
            return self._claimed_here(cur, rows, head, now)

    def looks_first(self) -> bool:
        """Whether SQLite claims look for their jobs in a read transaction first: until
        LOOK_FIRST_FOR seconds after the last look that walked long (see LONG_LOOK)."""
        return self._look_first_until > clock.monotonic()

    def _note_look(self, before: int) -> None:
        """After a look that began at `steps_here() == before`, under the write lock or in
        a read transaction: if it walked long, this store's claims look first for a while
        more. Looks that still walk long keep them at it, so the walk never returns under
        the lock while the backlog it passes stays."""
        if self.steps_here() - before > LONG_LOOK:
            self._look_first_until = clock.monotonic() + LOOK_FIRST_FOR

    def _find(self, names: int, defaults: tuple[bool, ...], picks: list[Any]) -> list[int]:
        """The ids a claim would take now, read in a read transaction."""
        key = ("pick", names, defaults)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = sqlite_pick(names, defaults)
        with self.read() as r:
            before = self.steps_here()
            ids = [row[0] for row in r.exec_driver_sql(sql, tuple(picks))]
            self._note_look(before)
            return ids

    def _claim_found(self, ids: list[int], head: tuple[str, str, str, str], now: datetime
                     ) -> tuple[list[Claimed], list[EventRecord]]:
        """Claim those of `ids` still pending and due (another worker may have taken some);
        `head`: the claim's worker, token, expiry and start time."""
        if not ids:
            return [], []
        with self._sqlite_tx() as cur:
            rows = cur.execute(sqlite_claim_found(len(ids)), (*head, *ids, head[3])).fetchall()
            return self._claimed_here(cur, rows, head, now)

    def _claimed_here(self, cur: Any, rows: list[Any], head: tuple[str, str, str, str], now: datetime
                      ) -> tuple[list[Claimed], list[EventRecord]]:
        """The claimed rows' `started` events, written in the claim's transaction (cursor `cur`)."""
        worker_id, token, _expires, now_s = head
        data = start_data(worker_id)
        rows.sort()
        event_ids = self._sqlite_events(cur, [(r[0], "started", r[1], r[2], r[3], RUNNING, r[5], data, now_s)
                                              for r in rows])
        rows = [(*r[:9], e, *r[9:]) for r, e in zip(rows, event_ids, strict=True)]
        self._written(event_ids)  # before COMMIT
        return self._claimed(rows, token, worker_id, now)

    def pg_claim_call(self, worker_id: str, names: Sequence[str], queues: Sequence[str] | None, limit: int,
                      now: datetime, lease: float, per_type: bool = False
                      ) -> PgCall[tuple[list[Claimed], list[EventRecord]]]:
        """PostgreSQL's claim as one statement and how to read its rows, for whoever runs it:
        the pool (`claim`) or a worker's own connection (`LoopConnection`)."""
        queues = list(dict.fromkeys(queues or ()))
        key = pick_key("claim", names, queues, per_type)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = PG_CLAIM.format(pick=pg_pick(names, queues, per_type),
                                                   notify=PG_EVENTS_NOTIFY_JOIN)
        token = new_lease_token()
        params = {
            "now": now, "names": list(names), "limit": limit,
            "worker": worker_id, "claim_token": token, "expires": now + timedelta(seconds=lease),
            "start_data": start_data(worker_id),
        }

        def read(rows: list[Any]) -> tuple[list[Claimed], list[EventRecord]]:
            self._written(r[9] for r in rows)  # as soon as the ids are known, before the caller emits
            return self._claimed(rows, token, worker_id, now)

        return PgCall(sql, params, read)

    @staticmethod
    def _claimed(rows: list[Any], token: str, worker_id: str, now: datetime
                 ) -> tuple[list[Claimed], list[EventRecord]]:
        """Claim rows (the job's columns, its `started` event id, then batch_id, args_version and
        meta) as jobs and events."""
        claimed = [Claimed(id=r[0], name=r[1], queue=r[2], owner=r[3], args=r[4], attempts=r[5],
                           max_retries=r[6], lease_token=token, checkpoint=r[7], parent_id=r[8],
                           batch_id=r[10], args_version=r[11], meta=r[12]) for r in rows]
        recorded = [EventRecord(id=r[9], job_id=r[0], type="started", name=r[1], queue=r[2], owner=r[3],
                                status=RUNNING, attempt=r[5], created_at=now, data={"worker_id": worker_id})
                    for r in rows]
        return claimed, recorded
