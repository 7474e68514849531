"""Batches: groups of jobs with callbacks once they have all finished (`activejob.Batch`).

A batch is a row of activejob_batches; its members are the jobs whose `batch_id` names it.
Its callbacks are stored with it, already validated and encoded (each one an enqueue
request's fields as JSON), so whoever settles the batch can enqueue them without knowing
the job types. Settling is one guarded UPDATE of the batch row: `finished_at IS NULL` for
on_complete/on_success, `failed_at IS NULL` for on_failure, in the same transaction as the
callback's INSERT, so however many workers settle the same batch at once, each callback is
written once (the row lock serialises them; the second finds the column set). A batch is
settled only once its `with` block has ended (`sealed_at`), so members that finish while
it is still being filled cannot complete it early; it is settled after every member
outcome that ends one (the recorder), when sealed, when cancelled, and by the waiting-jobs
safety net.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from ..errors import JobNotFound
from ..models import FINISHED, Batch, JobStatus
from ..records import BatchInfo, EventRecord, JobInfo
from ..request import EnqueueRequest
from .admin import Admin
from .base import BATCH_EVENT_NAME, PENDING, RUNNING, dump, jobs
from .enqueue import Enqueuing

batches = Batch.__table__  # type: ignore[attr-defined]

_UNFINISHED = [PENDING, RUNNING, JobStatus.WAITING.value]
_FINISHED = [s.value for s in FINISHED]


def _callback(kind: str, spec: dict[str, Any], batch_id: int, now: datetime) -> EnqueueRequest:
    meta = json.loads(spec["meta"]) if spec.get("meta") else {}
    meta["batch"] = batch_id  # what the callback's `self.batch` reads
    meta["batch_callback"] = kind
    return EnqueueRequest(name=spec["name"], args=spec["args"], queue=spec["queue"], priority=spec["priority"],
                          run_at=now, max_retries=spec["max_retries"], owner=spec.get("owner"),
                          args_version=spec.get("args_version"), meta=json.dumps(meta))


def _outcome(counts: dict[str, int]) -> str:
    """A finished batch's status: completed if every member did, else failed if one did,
    else cancelled."""
    if counts.get(JobStatus.COMPLETED.value, 0) == sum(counts.values()):
        return JobStatus.COMPLETED.value
    return JobStatus.FAILED.value if counts.get(JobStatus.FAILED.value) else JobStatus.CANCELLED.value


def _batch_event(batch: Any, type_: str, status: str, counts: dict[str, int], now: datetime) -> dict[str, Any]:
    """A row of the event log about the batch itself (no job), with its counts then."""
    data: dict[str, Any] = {"batch_id": batch["id"], "description": batch["description"],
                            "total": sum(counts.values())}
    data.update({s: counts.get(s, 0) for s in _FINISHED})
    return {"job_id": None, "batch_id": batch["id"], "type": type_, "name": BATCH_EVENT_NAME, "queue": "",
            "owner": batch["owner"], "status": status, "attempt": 0, "data": dump(data), "created_at": now}


class Batches(Enqueuing, Admin):
    """create_batch, seal_batch, settle_batches, get_batch, list_batches, cancel_batch."""

    def create_batch(self, *, description: str | None, owner: str | None, callbacks: str | None,
                     now: datetime) -> int:
        with self.write() as c:
            return int(c.execute(insert(batches).values(
                description=description, owner=owner, callbacks=callbacks, created_at=now,
            ).returning(batches.c.id)).scalar_one())

    def seal_batch(self, batch_id: int, now: datetime) -> list[EventRecord]:
        """The batch's block has ended: from now on it completes once its members have all
        finished (at once, if they already have, or if it has none)."""
        with self.write() as c:
            c.execute(update(batches).where(batches.c.id == batch_id, batches.c.sealed_at.is_(None))
                      .values(sealed_at=now))
        return self.settle_batches([batch_id], now)

    def settle_batches(self, batch_ids: Iterable[int], now: datetime) -> list[EventRecord]:
        """Enqueue the callbacks that are due: on_failure once a member has failed for good;
        on_complete (and on_success, if every member completed) once all have finished."""
        recorded: list[EventRecord] = []
        for batch_id in sorted(set(batch_ids)):
            recorded += self._settle_batch(batch_id, now)
        return recorded

    # A cancel settles the batches of the jobs it ended, after its own commit, as a worker
    # does after its outcomes: of members ending at once, the last to commit sees them all.

    def request_cancel(self, job_id: int, now: datetime, *, expect: Sequence[str] | None = None
                       ) -> tuple[str, list[EventRecord]]:
        status, recorded = super().request_cancel(job_id, now, expect=expect)
        return status, recorded + self._settle_batches_of(recorded, now)

    def cancel_many(self, job_ids: Sequence[int], now: datetime) -> tuple[dict[int, str], list[EventRecord]]:
        statuses, recorded = super().cancel_many(job_ids, now)
        return statuses, recorded + self._settle_batches_of(recorded, now)

    def _settle_batches_of(self, recorded: list[EventRecord], now: datetime, also: Sequence[int] = ()
                           ) -> list[EventRecord]:
        """Settle the batches of the jobs `recorded` cancelled, and the batches `also`."""
        ended = sorted({r.job_id for r in recorded if r.type == "cancelled" and r.job_id is not None})
        batch_ids = list(also)
        if ended:
            with self.read() as c:
                batch_ids += c.execute(select(jobs.c.batch_id).distinct()
                                       .where(jobs.c.id.in_(ended), jobs.c.batch_id.isnot(None))).scalars()
        return self.settle_batches(batch_ids, now) if batch_ids else []

    def _settle_batch(self, batch_id: int, now: datetime) -> list[EventRecord]:
        with self.write() as c:
            batch = c.execute(select(batches).where(batches.c.id == batch_id)
                              .with_for_update() if self._skip_locked else
                              select(batches).where(batches.c.id == batch_id)).mappings().first()
            if batch is None or (batch["finished_at"] is not None and batch["failed_at"] is not None):
                return []
            counts = self._member_counts(c, batch_id)
            due: list[str] = []
            said: list[dict[str, Any]] = []
            if counts.get(JobStatus.FAILED.value) and batch["failed_at"] is None:
                c.execute(update(batches).where(batches.c.id == batch_id).values(failed_at=now))
                due.append("failure")
                said.append(_batch_event(batch, "batch_failed", JobStatus.FAILED.value, counts, now))
            unfinished = sum(counts.get(s, 0) for s in _UNFINISHED)
            if batch["sealed_at"] is not None and batch["finished_at"] is None and not unfinished:
                c.execute(update(batches).where(batches.c.id == batch_id).values(finished_at=now))
                due.append("complete")
                if counts.get(JobStatus.COMPLETED.value, 0) == sum(counts.values()):
                    due.append("success")
                said.append(_batch_event(batch, "batch_finished", _outcome(counts), counts, now))
            specs = json.loads(batch["callbacks"] or "{}")
            requests = [_callback(kind, specs[kind], batch_id, now) for kind in due if kind in specs]
            # The batch's events and its callbacks are written in the same transaction as
            # the columns that say they were: each once, whoever settles.
            recorded = self._append(c, said)
            if requests:
                recorded += self.enqueue(requests, now, conn=c)[1]
            return recorded

    @staticmethod
    def _member_counts(c: Connection, batch_id: int) -> dict[str, int]:
        return {status: n for status, n in c.execute(
            select(jobs.c.status, func.count()).where(jobs.c.batch_id == batch_id).group_by(jobs.c.status))}

    def get_batch(self, batch_id: int) -> BatchInfo | None:
        with self.read() as c:
            batch = c.execute(select(batches).where(batches.c.id == batch_id)).mappings().first()
            if batch is None:
                return None
            rows = c.execute(
                select(jobs.c.status, func.count(), func.sum(func.coalesce(jobs.c.progress, 0.0)))
                .where(jobs.c.batch_id == batch_id).group_by(jobs.c.status)).all()
        return BatchInfo.from_row(batch, {s: (int(n), float(p or 0.0)) for s, n, p in rows})

    def batch_members(self, batch_id: int, *, limit: int = 500) -> list[JobInfo]:
        """The batch's members, oldest first."""
        with self.read() as c:
            rows = c.execute(select(jobs).where(jobs.c.batch_id == batch_id).order_by(jobs.c.id)
                             .limit(limit)).mappings().all()
        return [JobInfo.from_row(r) for r in rows]

    def batch_callbacks(self, batch_id: int) -> list[JobInfo]:
        """The callback jobs the batch has enqueued so far (each kind at most once)."""
        # The callback's meta ends with these two keys, in this order (`_callback`).
        pattern = f'%"batch": {int(batch_id)}, "batch_callback"%'
        with self.read() as c:
            rows = c.execute(select(jobs).where(jobs.c.meta.like(pattern)).order_by(jobs.c.id)
                             .limit(10)).mappings().all()
        return [JobInfo.from_row(r) for r in rows]

    def list_batches(self, *, limit: int = 50, unfinished: bool | None = None,
                     owner: str | None = None) -> list[BatchInfo]:
        query = select(batches.c.id).order_by(batches.c.id.desc()).limit(limit)
        if unfinished is not None:
            query = query.where(batches.c.finished_at.is_(None) if unfinished else batches.c.finished_at.isnot(None))
        if owner is not None:
            query = query.where(batches.c.owner == owner)
        with self.read() as c:
            ids = list(c.execute(query).scalars())
        return [info for info in (self.get_batch(i) for i in ids) if info is not None]

    def cancel_batch(self, batch_id: int, now: datetime) -> tuple[list[int], list[EventRecord]]:
        """Cancel every unfinished member (running ones are marked for their workers), and
        settle the batch. Returns the ids of the members still running, and the events."""
        recorded: list[EventRecord]
        with self.write() as c:
            # The batch first: once its row says cancelled (PostgreSQL: and is locked by this
            # update until commit), no member can join it, so the members read next are all
            # there will be. Read before, a member enqueued in between stayed pending.
            batch = c.execute(update(batches).where(batches.c.id == batch_id, batches.c.cancelled_at.is_(None),
                                                    batches.c.finished_at.is_(None))
                              .values(cancelled_at=now).returning(*batches.c)).mappings().first()
            recorded = []
            if batch is not None:  # a batch already finished is left as it ended: no event
                recorded = self._append(c, [_batch_event(batch, "batch_cancelled", JobStatus.CANCELLED.value,
                                                         self._member_counts(c, batch_id), now)])
            elif c.execute(select(batches.c.id).where(batches.c.id == batch_id)).first() is None:
                raise JobNotFound(f"no batch with id {batch_id}")
            members = list(c.execute(select(jobs.c.id).where(jobs.c.batch_id == batch_id,
                                                             jobs.c.status.in_(_UNFINISHED))
                                     .order_by(jobs.c.id)).scalars())
            statuses, cancelled = self._cancel_in(c, members, now)
            recorded += cancelled
        # Settled after the commit, as any cancel settles the batches of the jobs it ended
        # (a member's cancelled children may belong to other batches).
        running = sorted(i for i, s in statuses.items() if s == RUNNING)
        return running, recorded + self._settle_batches_of(recorded, now, also=[batch_id])

    def settle_open_batches(self, now: datetime) -> list[EventRecord]:
        """Safety net: settle sealed batches left unsettled (a worker died between an outcome
        and settling its batch, or a member ended by a cancel or a lost lease)."""
        member = jobs.alias("member")
        open_members = (select(func.count()).select_from(member)
                        .where(member.c.batch_id == batches.c.id, member.c.status.in_(_UNFINISHED))
                        .scalar_subquery())
        failed_members = (select(func.count()).select_from(member)
                          .where(member.c.batch_id == batches.c.id, member.c.status == JobStatus.FAILED.value)
                          .scalar_subquery())
        with self.read() as c:
            ids = list(c.execute(
                select(batches.c.id).where(
                    batches.c.finished_at.is_(None), batches.c.sealed_at.isnot(None),
                    (open_members == 0) | (batches.c.failed_at.is_(None) & (failed_members > 0)))
                .limit(100)).scalars())
        return self.settle_batches(ids, now) if ids else []
