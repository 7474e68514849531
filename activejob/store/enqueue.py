"""enqueue: new jobs and their `enqueued` events, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection

from .. import dialects
from ..models import UNIQUE_HELD
from ..records import EventRecord
from ..request import EnqueueRequest
from .base import PENDING, dump, jobs
from .dbapi import RawAccess
from .sql import EVENT_INSERT, PG_ENQUEUE, PG_ENQUEUE_ONE, SQLITE_JOB_INSERT, sqlite_ts


class Enqueuing(RawAccess):
    """enqueue, and its fast path for jobs without a unique key."""

    def enqueue(self, new: Sequence[EnqueueRequest], now: datetime, *, conn: Connection | None = None
                ) -> tuple[list[int], list[EventRecord]]:
        """Insert jobs (one transaction) with their `enqueued` events. Returns every job's
        id, in order; a job whose unique key is taken gets the existing job's id and no event."""
        if not new:
            return [], []
        if conn is None and all(j.plain for j in new):
            return self._enqueue_fast(new, now)
        params = [
            {
                "name": j.name, "queue": j.queue, "priority": j.priority, "status": PENDING,
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
            if plain:
                stmt = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
                for i, row in zip(plain, c.execute(stmt, [params[i] for i in plain]), strict=True):
                    ids[i] = row[0]
                fresh.extend(plain)
            for i, j in enumerate(new):
                if j.unique_key is None:
                    continue
                stmt = dialects.insert_unless_exists(jobs, "unique_key", self.dialect, where=UNIQUE_HELD)
                got = c.execute(stmt.values(**params[i]).returning(jobs.c.id)).scalar()
                if got is None:  # the key is taken: hand back the job that holds it
                    ids[i] = c.execute(select(jobs.c.id).where(jobs.c.unique_key == j.unique_key,
                                                               text(UNIQUE_HELD))).scalar_one()
                else:
                    ids[i] = got
                    fresh.append(i)
            fresh.sort()
            rows = [
                self._event({**params[i], "id": ids[i]}, "enqueued", now,
                            {"run_at": new[i].run_at.isoformat()} if new[i].run_at > now else None)
                for i in fresh
            ]
            recorded = self._append(c, rows)
            if rows:
                dialects.notify(c)
        return ids, recorded

    def _enqueue_fast(self, new: Sequence[EnqueueRequest], now: datetime) -> tuple[list[int], list[EventRecord]]:
        datas = [{"run_at": j.run_at.isoformat()} if j.run_at > now else None for j in new]
        if self.dialect == "postgresql" and len(new) == 1:
            j = new[0]
            rows = self._pg_one(PG_ENQUEUE_ONE, {
                "name": j.name, "queue": j.queue, "priority": j.priority, "args": j.args,
                "max_retries": j.max_retries, "run_at": j.run_at, "owner": j.owner, "parent_id": j.parent_id,
                "concurrency_key": j.concurrency_key, "data": dump(datas[0]), "now": now,
                "batch_id": j.batch_id, "rate_key": j.rate_key, "args_version": j.args_version, "meta": j.meta,
            })
            ids, event_ids = [rows[0][0]], [rows[0][1]]
        elif self.dialect == "postgresql":
            rows = self._pg_one(PG_ENQUEUE, {
                "name": [j.name for j in new], "queue": [j.queue for j in new],
                "priority": [j.priority for j in new], "args": [j.args for j in new],
                "max_retries": [j.max_retries for j in new], "run_at": [j.run_at for j in new],
                "owner": [j.owner for j in new], "parent_id": [j.parent_id for j in new],
                "concurrency_key": [j.concurrency_key for j in new], "data": [dump(d) for d in datas], "now": now,
                "batch_id": [j.batch_id for j in new], "rate_key": [j.rate_key for j in new],
                "args_version": [j.args_version for j in new], "meta": [j.meta for j in new],
            })
            ids = [r[0] for r in rows]
            event_ids = [r[1] for r in rows]
        else:
            now_s = sqlite_ts(now)
            with self._sqlite_tx() as cur:
                if len(new) == 1:
                    j = new[0]
                    cur.execute(SQLITE_JOB_INSERT, (j.name, j.queue, j.priority, j.args, j.max_retries,
                                                     sqlite_ts(j.run_at), now_s, j.owner, j.parent_id,
                                                     j.concurrency_key, j.batch_id, j.rate_key, j.args_version,
                                                     j.meta))
                    ids = [cur.lastrowid]
                    cur.execute(EVENT_INSERT, (ids[0], "enqueued", j.name, j.queue, j.owner, PENDING, 0,
                                                dump(datas[0]), now_s))
                    event_ids = [cur.lastrowid]
                else:
                    stamps: dict[datetime, str] = {}  # a bulk enqueue mostly shares one run_at
                    ids = self._sqlite_insert_many(cur, "activejob_jobs", SQLITE_JOB_INSERT, [
                        (j.name, j.queue, j.priority, j.args, j.max_retries,
                         stamps.get(j.run_at) or stamps.setdefault(j.run_at, sqlite_ts(j.run_at)), now_s,
                         j.owner, j.parent_id, j.concurrency_key, j.batch_id, j.rate_key, j.args_version, j.meta)
                        for j in new])
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
