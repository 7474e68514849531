"""enqueue: new jobs and their `enqueued` events, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from .. import dialects
from ..errors import ActiveJobError, InvalidTransition, JobNotFound, JobOptionsError
from ..models import UNIQUE_HELD, Batch
from ..records import EventRecord
from ..request import EnqueueRequest
from .base import EVENT_COLUMNS, PENDING, dump, jobs, json_rows
from .dbapi import GeneralPath, RawAccess
from .dependencies import WAITING, Dependencies
from .sql import (
    EVENT_INSERT,
    PG_ENQUEUE,
    PG_ENQUEUE_IN_BATCHES,
    PG_ENQUEUE_ONE,
    PG_ENQUEUE_UNIQUE,
    PG_INSERT_FREE_KEYS,
    SQLITE_BATCHES_OPEN,
    SQLITE_ENQUEUED_EVENTS,
    SQLITE_JOB_INSERT,
    SQLITE_LIVE_HOLDER,
    SQLITE_UNIQUE_JOB_INSERT,
    sqlite_ts,
)

batches = Batch.__table__  # type: ignore[attr-defined]


def _enqueued_data(job: EnqueueRequest, now: datetime) -> dict[str, Any] | None:
    data: dict[str, Any] = {}
    if job.run_at > now:
        data["run_at"] = job.run_at.isoformat()
    if job.depends_on:
        data["waiting_for"] = list(job.depends_on)
    return data or None


def jobs_json(new: Sequence[EnqueueRequest], datas: Sequence[dict[str, Any] | None]) -> str:
    """New jobs as PostgreSQL's bulk enqueue reads them: an array per job, with its
    `enqueued` event's data, in the order of `sql.ENQUEUE_FIELDS`."""
    stamps: dict[datetime, str] = {}  # a bulk enqueue mostly shares one run_at
    return json_rows(
        [j.name, j.queue, j.priority, j.args, j.max_retries,
         stamps.get(j.run_at) or stamps.setdefault(j.run_at, j.run_at.isoformat()), j.owner, j.parent_id,
         j.concurrency_key, dump(d), j.batch_id, j.rate_key, j.args_version, j.meta]
        for j, d in zip(new, datas, strict=True))


class UniqueKeyHeld(Exception):
    """An enqueue with `unique_mode="raise"` found its unique key held by another job; the
    transaction is rolled back, so nothing of the call was written. The queue turns it into
    `activejob.DuplicateJobError`, with a handle on the holder (the store knows no handles)."""

    def __init__(self, job: str, unique_key: str, holder_id: int, holder_name: str) -> None:
        self.job = job
        self.unique_key = unique_key
        self.holder_id = holder_id
        self.holder_name = holder_name
        super().__init__(f"{job}: unique key {unique_key!r} is held by job {holder_id} ({holder_name})")


class HeldBy(int):
    """The id a duplicate gets back: the job holding its unique key, with that job's name
    (a key may be held by a job of another type), so that its handle needs no read."""

    name: str

    def __new__(cls, job_id: int, name: str) -> HeldBy:
        held = super().__new__(cls, job_id)
        held.name = name
        return held


_HOLDER = (*EVENT_COLUMNS, jobs.c.args, jobs.c.args_version, jobs.c.run_at, jobs.c.unique_until,
           jobs.c.unique_expires_at)
"""What a duplicate needs of the job holding its key: who it is (and its event's columns), and
what replace and debounce may change."""

_REPLACE = update(jobs).where(jobs.c.id == bindparam("holder"), jobs.c.status == PENDING).values(
    args=bindparam("new_args"), args_version=bindparam("new_version"), run_at=bindparam("new_run_at"))
"""A pending holder given a duplicate's args and run time (replace, debounce), values bound
at execution: a statement built around them cost more than running it."""

_HOLD_ATTEMPTS = 20
"""Times a duplicate looks again after its key changed hands under it (a holder that
finished, started or expired between two statements) before giving up: each look follows
another process's commit, so twenty mean a key taken and freed in a tight loop elsewhere."""


def _refuse_closed(new: Sequence[EnqueueRequest], batches_open: dict[int, bool]) -> None:
    """Refuse members of a batch that does not exist, or has finished or been cancelled (its
    callbacks have run: a member added now would never be counted), naming the job type.
    `batches_open`: each batch found, and whether it is open."""
    for j in new:
        if j.batch_id is None or batches_open.get(j.batch_id):
            continue
        if j.batch_id not in batches_open:
            raise JobNotFound(f"{j.name}: no batch with id {j.batch_id} to add this job to")
        raise InvalidTransition(f"{j.name}: batch {j.batch_id} has finished or was cancelled, so no job can "
                                "join it; start a new batch")


class Enqueuing(RawAccess, Dependencies):
    """enqueue, and its fast paths: a job alone (unique or not), and many jobs without unique keys."""

    _hold_sql: tuple[Any, Any] | None = None

    def enqueue(self, new: Sequence[EnqueueRequest], now: datetime, *, conn: Connection | None = None
                ) -> tuple[list[int], list[EventRecord]]:
        """Insert jobs (one transaction) with their `enqueued` events. Returns every job's
        id, in order; a job whose unique key is taken gets the existing job's id and no event."""
        if not new:
            return [], []
        if conn is None:
            if len(new) == 1:  # perform_later: most enqueues, so without the lists of a bulk one
                if not new[0].depends_on:
                    try:
                        return self._enqueue_one(new[0], now)
                    except GeneralPath:  # a held unique key the general path deals with
                        pass
            elif all(j.plain for j in new):
                return self._enqueue_fast(new, now)
        params = [
            {
                "name": j.name, "queue": j.queue, "priority": j.priority,
                "status": WAITING if j.depends_on else PENDING,
                "args": j.args, "attempts": 0, "max_retries": j.max_retries, "run_at": j.run_at,
                "created_at": now, "cancel_requested": False, "owner": j.owner,
                "parent_id": j.parent_id, "unique_key": j.unique_key, "concurrency_key": j.concurrency_key,
                "unique_until": j.unique_until, "unique_expires_at": j.unique_expires_at, "batch_id": j.batch_id,
                "rate_key": j.rate_key, "args_version": j.args_version, "meta": j.meta,
            }
            for j in new
        ]
        ids: list[int] = [0] * len(new)
        fresh: list[int] = []
        plain = [i for i, j in enumerate(new) if j.unique_key is None]
        with self.write(conn) as c:
            self._check_batches_open(c, new)
            if plain:
                stmt = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
                for i, row in zip(plain, c.execute(stmt, [params[i] for i in plain]), strict=True):
                    ids[i] = row[0]
                fresh.extend(plain)
            fresh.extend(self._insert_free_keys(c, new, params, ids, now))
            inserted_now = set(fresh)
            changes: list[dict[str, Any]] = []  # `replaced` events of holders given the new args
            # In key order too (each key's jobs in call order), for the locks' sake, as above.
            for i in sorted((i for i, j in enumerate(new) if j.unique_key is not None and i not in inserted_now),
                            key=lambda i: (new[i].unique_key, i)):
                j = new[i]
                ids[i], inserted, change = self._hold_key(c, j, params[i], now,
                                                          lambda: {ids[k] for k in fresh})
                if inserted:
                    fresh.append(i)
                if change is not None:
                    changes.append(change)
            fresh.sort()
            rows = [
                self._event({**params[i], "id": ids[i]}, "enqueued", now, _enqueued_data(new[i], now))
                for i in fresh
            ]
            rows.extend(changes)
            # After every job of the call is written, so a job may depend on one enqueued
            # before it in the same call (`chain`).
            for i in fresh:
                if new[i].depends_on:
                    rows.extend(self._add_dependencies(c, ids[i], new[i].depends_on, new[i].run_on_failure, now,
                                                       new[i].name))
            recorded = self._append(c, rows, wake=True)
        return ids, recorded

    @staticmethod
    def _sqlite_check_batches_open(cur: Any, new: Sequence[EnqueueRequest]) -> None:
        """`_refuse_closed` inside a hot path's write transaction (the write lock is held)."""
        wanted = sorted({j.batch_id for j in new if j.batch_id is not None})
        rows = cur.execute(SQLITE_BATCHES_OPEN.format(ids=", ".join("?" * len(wanted))), wanted).fetchall()
        _refuse_closed(new, {row[0]: bool(row[1]) for row in rows})

    def _check_batches_open(self, c: Connection, new: Sequence[EnqueueRequest]) -> None:
        """The general path's `_refuse_closed`: the batches read under a share lock on their
        rows (PostgreSQL), which settling a batch takes for update, so a member cannot slip in
        while its batch settles (SQLite: the write lock)."""
        wanted = {j.batch_id for j in new if j.batch_id is not None}
        if not wanted:
            return
        look = select(batches.c.id, batches.c.finished_at.is_(None) & batches.c.cancelled_at.is_(None)) \
            .where(batches.c.id.in_(wanted))
        if self._skip_locked:
            look = look.with_for_update(read=True)
        _refuse_closed(new, {row[0]: bool(row[1]) for row in c.execute(look)})

    def _insert_free_keys(self, c: Connection, new: Sequence[EnqueueRequest], params: list[dict[str, Any]],
                          ids: list[int], now: datetime) -> list[int]:
        """Insert at once the first job of each unique key of the call whose key is free (one
        statement for a bulk enqueue's keys, instead of one each), setting their `ids`;
        returns their indexes. The rest (a key already held, or given again in the call) are
        `_hold_key`'s. A one-key call leaves its job to `_hold_key` too: one statement either way."""
        first: dict[str, int] = {}
        for i, j in enumerate(new):
            if j.unique_key is not None:
                first.setdefault(j.unique_key, i)
        if len(first) < 2:
            return []
        # In key order: an insert waits for another transaction's uncommitted insert of the
        # same key (PostgreSQL), so two calls taking keys in different orders could each hold
        # one the other waits for. Taken in one order, the later call waits for the earlier.
        first = dict(sorted(first.items()))
        # Rows whose key is held come back as none at all, so the ids are matched to their
        # jobs by key (one job a key here), not by position.
        if self.dialect == "postgresql":  # arrays in the order of sql.FREE_KEYS_FIELDS
            rows = c.exec_driver_sql(PG_INSERT_FREE_KEYS, {"now": now, "jobs": json_rows(
                [p["name"], p["queue"], p["priority"], p["status"], p["args"], p["max_retries"],
                 p["run_at"].isoformat(), p["owner"], p["parent_id"], p["concurrency_key"], p["batch_id"],
                 p["rate_key"], p["args_version"], p["meta"], p["unique_key"], p["unique_until"],
                 None if p["unique_expires_at"] is None else p["unique_expires_at"].isoformat()]
                for p in (params[i] for i in first.values()))})
        else:  # `_hold_key`'s insert, given every row at once
            rows = c.execute(self._hold_statements()[0], [params[i] for i in first.values()])
        got = {key: job_id for job_id, key in rows}
        for key, job_id in got.items():
            ids[first[key]] = job_id
        return sorted(first[key] for key in got)

    def _hold_statements(self) -> tuple[Any, Any]:
        """`_hold_key`'s insert (returning the id and key of what it inserted) and holder
        lookup, built once per store: the values are bound at execution, since building a
        statement around them (`.values(**row)`) cost more than the SQL itself, about three
        quarters of a unique job's enqueue."""
        if self._hold_sql is None:
            attempt = dialects.insert_unless_exists(jobs, "unique_key", self.dialect, where=UNIQUE_HELD)
            self._hold_sql = (attempt.returning(jobs.c.id, jobs.c.unique_key),
                              select(*_HOLDER).where(jobs.c.unique_key == bindparam("key"), text(UNIQUE_HELD)))
        return self._hold_sql

    def _hold_key(self, c: Connection, j: EnqueueRequest, row: dict[str, Any], now: datetime,
                  written: Callable[[], set[int]]) -> tuple[int, bool, dict[str, Any] | None]:
        """Insert the job `j` (its column values `row`) unless its unique key is held; else do
        with the holder what `j.unique_mode` says. Returns the job id the caller gets, whether
        that job is the new one, and the `replaced` event row when the holder took new args.

        Exactly one job holds a key: the insert and the unique index decide it (on PostgreSQL
        the insert waits for a concurrent holder's transaction to end). Between the insert and
        the lookup of the holder, the holder may let go (it finished, started or expired) in
        another transaction: then the insert is tried again. `written()`: the ids this call
        has inserted so far."""
        attempt, find = self._hold_statements()
        for _ in range(_HOLD_ATTEMPTS):
            got = c.execute(attempt, row).scalar()  # the id
            if got is not None:
                return got, True, None
            holder = c.execute(find, {"key": j.unique_key}).mappings().first()
            if holder is None:  # let go since the insert: the key may be free now
                continue
            if holder["unique_until"] == "time" and holder["unique_expires_at"] <= now:
                # Held for a time that is over: it lets go here, in the same transaction as
                # the insert that takes its place (the guard makes one enqueuer do it).
                c.execute(update(jobs).where(jobs.c.id == holder["id"], jobs.c.unique_until == "time")
                          .values(unique_until="expired"))
                continue
            if j.unique_mode == "raise":
                if holder["id"] in written():
                    raise JobOptionsError(j.name, "unique_key", (
                        f"{j.unique_key!r} is given to two jobs of one call, and unique_mode='raise' refuses "
                        "the second: give each its own key, or enqueue them in separate calls"))
                raise UniqueKeyHeld(j.name, j.unique_key or "", holder["id"], holder["name"])
            if j.unique_mode in ("replace", "debounce") and holder["status"] == PENDING and holder["name"] == j.name:
                replaced, change = self._replace(c, j, holder, now)
                if not replaced:  # it was claimed meanwhile: look again
                    continue
                return HeldBy(holder["id"], holder["name"]), False, change
            # 'skip'; or a holder replace and debounce leave alone: one already running (or
            # waiting), whose args are in use, or a job of another type, whose args differ.
            return HeldBy(holder["id"], holder["name"]), False, None
        raise ActiveJobError(f"{j.name}: unique key {j.unique_key!r} changed hands {_HOLD_ATTEMPTS} times "
                             "while this job was enqueued; enqueue it again")

    def _replace(self, c: Connection, j: EnqueueRequest, holder: RowMapping, now: datetime
                 ) -> tuple[bool, dict[str, Any] | None]:
        """Give the pending holder `j`'s args and run time (replace; debounce, whose run time is
        now + the call's wait). Returns whether it was still pending, and the `replaced`
        event row (None when nothing changed)."""
        values = {"args": j.args, "args_version": j.args_version, "run_at": j.run_at}
        if not c.execute(_REPLACE, {"holder": holder["id"], "new_args": j.args, "new_version": j.args_version,
                                    "new_run_at": j.run_at}).rowcount:
            return False, None
        changed = [field for field in ("args", "args_version", "run_at") if holder[field] != values[field]]
        if not changed:
            return True, None
        data: dict[str, Any] = {"mode": j.unique_mode, "changed": changed, "run_at": j.run_at.isoformat()}
        if "run_at" in changed:
            data["previous_run_at"] = holder["run_at"].isoformat()
        return True, self._event(holder, "replaced", now, data)

    def _enqueue_one(self, j: EnqueueRequest, now: datetime) -> tuple[list[int], list[EventRecord]]:
        """One job without dependencies, in one statement (PostgreSQL) or one short
        transaction (SQLite). A unique key already held gives the holder's id when the mode
        is 'skip'; any other case of a held key raises GeneralPath, having written nothing."""
        data = {"run_at": j.run_at.isoformat()} if j.run_at > now else None
        unique = j.unique_key is not None
        if j.batch_id is not None and self.dialect == "postgresql":
            if unique:
                raise GeneralPath
            return self._enqueue_fast([j], now)  # the statement that checks the batch is open
        if self.dialect == "postgresql":
            params = {
                "name": j.name, "queue": j.queue, "priority": j.priority, "args": j.args,
                "max_retries": j.max_retries, "run_at": j.run_at, "owner": j.owner, "parent_id": j.parent_id,
                "concurrency_key": j.concurrency_key, "data": dump(data), "now": now,
                "batch_id": j.batch_id, "rate_key": j.rate_key, "args_version": j.args_version, "meta": j.meta,
            }
            if unique:
                params.update(unique_key=j.unique_key, unique_until=j.unique_until,
                              unique_expires_at=j.unique_expires_at)
            rows = self._pg_one(PG_ENQUEUE_UNIQUE if unique else PG_ENQUEUE_ONE, params)
            if not rows or rows[0][1] is None:  # the key is held (a unique job)
                return self._skipped(j, rows[0][2:] if rows else None)
            (job_id, event_id, *_), = rows
            self._written((event_id,))  # committed with the statement: the id comes with its row
        else:
            now_s = sqlite_ts(now)
            with self._sqlite_tx() as cur:
                if j.batch_id is not None:
                    self._sqlite_check_batches_open(cur, [j])
                values = (j.name, j.queue, j.priority, j.args, j.max_retries, sqlite_ts(j.run_at), now_s, j.owner,
                          j.parent_id, j.concurrency_key, j.batch_id, j.rate_key, j.args_version, j.meta)
                if not unique:
                    cur.execute(SQLITE_JOB_INSERT, values)
                elif not cur.execute(SQLITE_UNIQUE_JOB_INSERT, (
                        *values, j.unique_key, j.unique_until,
                        None if j.unique_expires_at is None else sqlite_ts(j.unique_expires_at))).rowcount:
                    holder = cur.execute(SQLITE_LIVE_HOLDER, (j.unique_key, now_s)).fetchone()
                    return self._skipped(j, holder)
                job_id = cur.lastrowid
                cur.execute(EVENT_INSERT, (job_id, "enqueued", j.name, j.queue, j.owner, PENDING, 0, dump(data),
                                           now_s))
                event_id = cur.lastrowid
                self._written((event_id,))  # before COMMIT
        return [job_id], [EventRecord(id=event_id, job_id=job_id, type="enqueued", name=j.name, queue=j.queue,
                                      owner=j.owner, status=PENDING, attempt=0, created_at=now, data=data or {})]

    @staticmethod
    def _skipped(j: EnqueueRequest, holder: Any) -> tuple[list[int], list[EventRecord]]:
        """The fast path's duplicate: the live holder's id, nothing written, when the mode is
        'skip'. Else (replace, debounce, raise; or a holder that let go, or whose time is
        over) GeneralPath: `_hold_key` does what the mode says."""
        if holder is None or j.unique_mode != "skip":
            raise GeneralPath
        return [HeldBy(holder[0], holder[1])], []

    def _enqueue_fast(self, new: Sequence[EnqueueRequest], now: datetime) -> tuple[list[int], list[EventRecord]]:
        datas = [{"run_at": j.run_at.isoformat()} if j.run_at > now else None for j in new]
        in_batches = any(j.batch_id is not None for j in new)
        if self.dialect == "postgresql":
            rows = self._pg_one(PG_ENQUEUE_IN_BATCHES if in_batches else PG_ENQUEUE,
                                {"jobs": jobs_json(new, datas), "now": now})
            if not rows:  # a batch it names is closed (or missing): nothing was written; say which
                with self.read() as c:
                    self._check_batches_open(c, new)
                raise ActiveJobError(f"{new[0].name}: the jobs were not written")  # (a batch reopened: cannot be)
            ids = [r[0] for r in rows]
            event_ids = [r[1] for r in rows]
        else:
            now_s = sqlite_ts(now)
            with self._sqlite_tx() as cur:
                if in_batches:
                    self._sqlite_check_batches_open(cur, new)
                stamps: dict[datetime, str] = {}  # a bulk enqueue mostly shares one run_at
                ids = self._sqlite_insert_many(cur, "activejob_jobs", SQLITE_JOB_INSERT, [
                    (j.name, j.queue, j.priority, j.args, j.max_retries,
                     stamps.get(j.run_at) or stamps.setdefault(j.run_at, sqlite_ts(j.run_at)), now_s,
                     j.owner, j.parent_id, j.concurrency_key, j.batch_id, j.rate_key, j.args_version, j.meta)
                    for j in new])
                if all(d == datas[0] for d in datas):  # one call's jobs share their run_at
                    event_ids = self._sqlite_insert_select(
                        cur, "activejob_events", SQLITE_ENQUEUED_EVENTS, (dump(datas[0]), now_s, ids[0], ids[-1]),
                        len(ids))
                else:
                    event_ids = self._sqlite_insert_many(cur, "activejob_events", EVENT_INSERT, [
                        (i, "enqueued", j.name, j.queue, j.owner, PENDING, 0, dump(d), now_s)
                        for i, j, d in zip(ids, new, datas, strict=True)])
                self._written(event_ids)  # before COMMIT
        if self.dialect == "postgresql":
            self._written(event_ids)  # committed with the statement: the ids come with its rows
        recorded = [
            EventRecord(id=e, job_id=i, type="enqueued", name=j.name, queue=j.queue, owner=j.owner,
                        status=PENDING, attempt=0, created_at=now, data=d or {})
            for e, i, j, d in zip(event_ids, ids, new, datas, strict=True)
        ]
        return ids, recorded
