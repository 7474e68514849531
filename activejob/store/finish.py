"""finish: how attempts ended (complete / retry / fail / cancel / requeue / wait), fenced by
the lease token; and finish_and_claim, which refills the freed slots in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, literal, update

from ..models import FINISHED, JobStatus
from ..records import Claimed, EventRecord
from .base import EVENT_COLUMNS, PENDING, RUNNING, dump, jobs, json_rows, new_lease_token, start_data
from .claim import Claiming
from .dbapi import GeneralPath, PgCall, WouldBlock
from .parents import Parents
from .sql import (
    PG_EVENTS_NOTIFY_FROM,
    PG_EVENTS_NOTIFY_JOIN,
    PG_FINISH,
    PG_FINISH_AND_CLAIM,
    PG_NOTIFY_FROM,
    PG_NOTIFY_JOIN,
    pg_pick,
    pick_key,
    sqlite_finish,
    sqlite_ts,
)
from .values import Outcome


def finish_data(o: Outcome) -> dict[str, Any]:
    data = dict(o.data)
    if o.error is not None:
        data.setdefault("error", o.error)
    if o.event == "completed" and o.result is not None:
        data["result"] = json.loads(o.result)
    if o.run_at is not None and o.status == PENDING:
        data["run_at"] = o.run_at.isoformat()
    return data


_FINISHED = frozenset(s.value for s in FINISHED)


def outcomes_json(outcomes: Sequence[Outcome], datas: dict[int, dict[str, Any]]) -> str:
    """The outcomes as PostgreSQL's finish reads them (see PG_FINISH_CTES).

    >>> from activejob.store.values import Outcome
    >>> outcomes_json([Outcome(7, "t", "completed", event="completed")], {7: {}})
    '[{"id":7,"token":"t","status":"completed","result":null,"error":null,"traceback":null,"run_at":null,"refund":0,"event":"completed","data":null}]'
    """
    return json_rows(
        {"id": o.job_id, "token": o.token, "status": o.status, "result": o.result, "error": o.error,
         "traceback": o.traceback, "run_at": None if o.run_at is None else o.run_at.isoformat(),
         "refund": 1 if o.refund_attempt else 0, "event": o.event, "data": dump(datas[o.job_id])}
        for o in outcomes)


def _note_dependents(outcomes: Sequence[Outcome], ids: set[int]) -> None:
    """Mark the outcomes written for jobs that others wait for (see Outcome.has_dependents)."""
    for o in outcomes:
        o.has_dependents = o.job_id in ids


HotBatch = tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord], list[Outcome]]
"""finish_and_claim's statement read back: ids written, their events, the jobs claimed, their
`started` events, and the outcomes left for the general path."""


class Finishing(Claiming, Parents):
    """finish and finish_and_claim: a fast path per dialect, the general path for the rest."""

    def finish(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        """Record how attempts ended, all in one transaction. Returns the ids written;
        an outcome whose lease was lost (recovered, taken over) changes nothing."""
        written, recorded, rest = self._finish_fast(outcomes, now)
        if rest:
            more_written, more = self._finish_general(rest, now)
            written |= more_written
            recorded += more
        return written, recorded

    def _finish_general(self, outcomes: Sequence[Outcome], now: datetime) -> tuple[set[int], list[EventRecord]]:
        written: set[int] = set()
        parents: set[int] = set()
        rows: list[dict[str, Any]] = []
        with self.write() as c:
            for o in sorted(outcomes, key=lambda o: o.job_id):  # lock rows in id order: no deadlocks
                finished = o.status in FINISHED
                values: dict[str, Any] = {
                    "status": o.status, "result": o.result, "error": o.error,
                    "traceback": o.traceback, "finished_at": now if finished else None,
                    "worker_id": None, "lease_token": None, "lease_expires_at": None,
                }
                if o.run_at is not None:
                    values["run_at"] = o.run_at
                if o.status == PENDING:
                    # A job someone asked to cancel does not go back to pending (a retry, a
                    # requeue at shutdown), where the next claim would clear the request and
                    # run it again: it is cancelled. Decided in the UPDATE, under its row lock.
                    asked = jobs.c.cancel_requested
                    values["status"] = case((asked, JobStatus.CANCELLED.value), else_=PENDING)
                    values["finished_at"] = case((asked, literal(now, jobs.c.finished_at.type)), else_=None)
                if o.refund_attempt:  # a requeue at shutdown (unless cancelled, above: it did start), a wait
                    values["attempts"] = jobs.c.attempts - (
                        case((jobs.c.cancel_requested, 0), else_=1) if o.status == PENDING else 1)
                stmt = (
                    update(jobs)
                    .where(jobs.c.id == o.job_id, jobs.c.status == RUNNING, jobs.c.lease_token == o.token)
                    .values(**values)
                    .returning(*EVENT_COLUMNS, jobs.c.has_dependents)
                )
                row = c.execute(stmt).mappings().first()
                if row is None:
                    continue
                if o.status == PENDING and row["status"] == JobStatus.CANCELLED.value:
                    # The caller settles what was written (batches, dependents): tell it.
                    o.status, o.event, finished = JobStatus.CANCELLED.value, "cancelled", True
                    o.data = {"reason": "requested"}
                written.add(o.job_id)
                o.has_dependents = bool(row["has_dependents"])
                if o.status == JobStatus.WAITING.value:
                    parents.add(o.job_id)  # its children may all be done already
                elif finished and row["parent_id"] is not None:
                    parents.add(row["parent_id"])
                rows.append(self._event(row, o.event, now, finish_data(o)))
            woken = self._wake_parents(c, parents, now)
            recorded = self._append(c, rows + woken, wake=bool(woken) or any(o.wakes_workers for o in outcomes))
        return written, recorded

    def _finish_fast(self, outcomes: Sequence[Outcome], now: datetime
                     ) -> tuple[set[int], list[EventRecord], list[Outcome]]:
        """Write what the fast path can; return the outcomes left for the general path."""
        datas = {o.job_id: finish_data(o) for o in outcomes}
        if self.dialect == "postgresql":
            simple = [o for o in outcomes if o.status != JobStatus.WAITING.value]
            if not simple:
                return set(), [], list(outcomes)
            wake = any(o.wakes_workers for o in simple)
            key = ("finish", wake)
            sql = self._sql.get(key)
            if sql is None:
                sql = self._sql[key] = PG_FINISH.format(
                    notify=PG_NOTIFY_JOIN if wake else PG_EVENTS_NOTIFY_JOIN)
            rows = self._pg_one(sql, {"outcomes": outcomes_json(simple, datas), "now": now})
            self._written(r[0] for r in rows)  # as soon as the ids are known, before the caller emits
            _note_dependents(outcomes, {r[1] for r in rows if r[8]})
            recorded = [EventRecord(id=r[0], job_id=r[1], type=r[2], name=r[3], queue=r[4], owner=r[5],
                                    status=r[6], attempt=r[7], created_at=now, data=datas[r[1]]) for r in rows]
            written = {r[1] for r in rows}
            return written, recorded, [o for o in outcomes if o.job_id not in written]
        if any(o.status == JobStatus.WAITING.value for o in outcomes):
            return set(), [], list(outcomes)  # parents waiting on children: the general path
        try:
            with self._sqlite_tx() as cur:
                done, recorded = self._sqlite_finish(cur, outcomes, now, datas)
        except GeneralPath:
            return set(), [], list(outcomes)
        return done, recorded, []

    def pg_finish_and_claim_call(self, outcomes: Sequence[Outcome], now: datetime, worker_id: str,
                                 names: Sequence[str], queues: Sequence[str] | None, limit: int, lease: float,
                                 per_type: bool = False) -> PgCall[HotBatch]:
        """Outcomes written and `limit` slots refilled in one statement. What it reads back
        ends with the outcomes it did not write (lost leases, jobs with a parent): those
        are the general path's."""
        datas = {o.job_id: finish_data(o) for o in outcomes}
        wake = any(o.wakes_workers for o in outcomes)
        queues = list(dict.fromkeys(queues or ()))
        key = pick_key(("finish_and_claim", wake), names, queues, per_type)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = PG_FINISH_AND_CLAIM.format(
                pick=pg_pick(names, queues, per_type), notify=PG_NOTIFY_FROM if wake else PG_EVENTS_NOTIFY_FROM)
        token = new_lease_token()
        params = {
            "outcomes": outcomes_json(outcomes, datas), "now": now,
            "names": list(names), "limit": limit, "worker": worker_id,
            "claim_token": token, "expires": now + timedelta(seconds=lease),
            "start_data": start_data(worker_id),
        }

        def read(rows: list[Any]) -> HotBatch:
            finished = [r for r in rows if r[0] == "f"]
            # Claim rows reordered as the claim statement returns them: the job, then its event id.
            taken = sorted((r[2], r[4], r[5], r[6], r[9], r[8], r[10], r[11], r[12], r[1], r[13], r[14], r[15])
                           for r in rows if r[0] == "c")
            self._written(r[1] for r in rows if r[0] != "n")  # as soon as the ids are known
            _note_dependents(outcomes, {r[2] for r in finished if r[16]})
            recorded = [EventRecord(id=r[1], job_id=r[2], type=r[3], name=r[4], queue=r[5], owner=r[6],
                                    status=r[7], attempt=r[8], created_at=now, data=datas[r[2]])
                        for r in finished]
            written = {r[2] for r in finished}
            claimed, started = self._claimed(taken, token, worker_id, now)
            return written, recorded, claimed, started, [o for o in outcomes if o.job_id not in written]

        return PgCall(sql, params, read)

    def _sqlite_finish(self, cur: Any, outcomes: Sequence[Outcome], now: datetime,
                       datas: dict[int, dict[str, Any]]) -> tuple[set[int], list[EventRecord]]:
        now_s = sqlite_ts(now)
        # Outcomes alike (a batch of no-ops all `completed` with no result) share one UPDATE.
        alike: dict[tuple[Any, ...], list[Outcome]] = {}
        for o in sorted(outcomes, key=lambda o: o.job_id):
            finished = o.status in FINISHED
            values = (o.status, o.result, o.error, o.traceback, now_s if finished else None,
                      None if o.run_at is None else sqlite_ts(o.run_at), 1 if o.refund_attempt else 0)
            alike.setdefault(values, []).append(o)
        rows: dict[int, Any] = {}
        for values, group in alike.items():
            key = ("finish", len(group))
            sql = self._sql.get(key)
            if sql is None:
                sql = self._sql[key] = sqlite_finish(len(group))
            for row in cur.execute(sql, (*values, *(o.job_id for o in group),
                                         *(v for o in group for v in (o.job_id, o.token)))).fetchall():
                if row[6] is not None and row[4] in _FINISHED:
                    raise GeneralPath  # its parent may wake up: roll back, take the general path
                if row[8] and row[4] == PENDING:
                    raise GeneralPath  # asked to cancel: cancelled, not back to pending (see _finish_general)
                rows[row[0]] = row
        # A job missing from `rows` lost its lease: another worker owns it now.
        done = [o for o in sorted(outcomes, key=lambda o: o.job_id) if o.job_id in rows]
        _note_dependents(done, {job_id for job_id, row in rows.items() if row[7]})
        event_ids = self._sqlite_events(cur, [
            (o.job_id, o.event, *rows[o.job_id][1:6], dump(datas[o.job_id]), now_s) for o in done])
        self._written(event_ids)  # before COMMIT (the caller's transaction)
        recorded = [EventRecord(id=e, job_id=o.job_id, type=o.event, name=rows[o.job_id][1],
                                queue=rows[o.job_id][2], owner=rows[o.job_id][3], status=rows[o.job_id][4],
                                attempt=rows[o.job_id][5], created_at=now, data=datas[o.job_id])
                    for e, o in zip(event_ids, done, strict=True)]
        return {o.job_id for o in done}, recorded

    def finish_and_claim(self, outcomes: Sequence[Outcome], now: datetime, *, worker_id: str,
                         names: Sequence[str], queues: Sequence[str] | None, limit: int, lease: float,
                         nowait: bool = False, per_type: bool = False
                         ) -> tuple[set[int], list[EventRecord], list[Claimed], list[EventRecord]]:
        """Record outcomes and refill the slots they free, in ONE transaction (on
        PostgreSQL one statement; outcomes it cannot take go through `finish` after it).

        Raises WouldBlock, having changed nothing, when an outcome needs the general path
        (`finish`, then `claim`), or on SQLite when `nowait` and the write lock (this
        process's or another's) is taken or the claims look first (claim.LONG_LOOK): so a
        caller on an event loop can try it inline.
        """
        if any(o.status == JobStatus.WAITING.value for o in outcomes):
            raise WouldBlock("not a hot-path case")
        if self.dialect == "postgresql":
            written, recorded, claimed, started, rest = self._pg_run(
                self.pg_finish_and_claim_call(outcomes, now, worker_id, names, queues, limit, lease, per_type))
            if rest:
                more_written, more = self._finish_general(rest, now)
                written |= more_written
                recorded += more
            return written, recorded, claimed, started
        refill = limit > 0 and bool(names)
        later = refill and self.looks_first()  # the claim looks first, in a transaction of its own
        if later and nowait:
            raise WouldBlock("this worker's claims look first, in a read transaction")
        datas = {o.job_id: finish_data(o) for o in outcomes}
        try:
            with self._sqlite_tx(nowait=nowait) as cur:
                done, recorded = self._sqlite_finish(cur, outcomes, now, datas)
                claimed, started = self._claim_fast(worker_id, names, queues, limit, now, lease, cur=cur) \
                    if refill and not later else ([], [])
        except GeneralPath:
            raise WouldBlock("an outcome needs the general path") from None
        if later:
            claimed, started = self._claim_fast(worker_id, names, queues, limit, now, lease)
        return done, recorded, claimed, started
