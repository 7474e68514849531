"""The hand-written SQL of the hot paths, for SQLite and PostgreSQL.

enqueue, claim and finish run once per job, so they skip SQLAlchemy's statement
machinery and speak DBAPI directly, with prebuilt SQL. SQLite: a cursor inside the
usual BEGIN IMMEDIATE transaction (Store.write). PostgreSQL: ONE statement, run in
autocommit, so the job's change, its event row and the NOTIFY commit together in a
single round trip (psycopg prepares statements it sees repeatedly). The guarantees do
not change: state change + event in one transaction, fenced by the lease token, and a
verb returns only after its commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ..models import SQLITE_NAMED_QUEUE_WHERE, UNIQUE_HELD
from .checkpoints import BACKSTOP_PAGES


def sqlite_ts(value: datetime) -> str:
    """The text form UTCDateTime stores in SQLite (naive UTC, always with microseconds):
    `2026-01-02 03:04:05.000006`, ISO 8601 cut before the UTC offset."""
    if value.tzinfo is not UTC and value.tzinfo is not None:  # clock.now() is UTC already
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


WORKERS_CHANNEL = "activejob"
"""What idle workers LISTEN to on PostgreSQL: a job may be due (`dialects.NOTIFY_CHANNEL`)."""
EVENTS_CHANNEL = "activejob_events"
"""What EventRelays LISTEN to: events were written (`store.EVENTS_CHANNEL`)."""
PG_WAKE_WORKERS = f"pg_notify('{WORKERS_CHANNEL}', '')"
PG_WAKE_RELAYS = f"pg_notify('{EVENTS_CHANNEL}', '')"
"""The NOTIFYs as expressions, for a statement's own SELECT or RETURNING: a transaction's
identical notifications are delivered once, at its commit, however many rows call them."""
PG_NOTIFY_FROM = f"(SELECT {PG_WAKE_WORKERS}, {PG_WAKE_RELAYS}) AS n"
PG_EVENTS_NOTIFY_FROM = f"(SELECT {PG_WAKE_RELAYS}) AS n"
PG_NOTIFY_JOIN = f", {PG_NOTIFY_FROM}"
PG_EVENTS_NOTIFY_JOIN = f", {PG_EVENTS_NOTIFY_FROM}"


EVENT_INSERT = (
    "INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQLITE_JOB_INSERT = (
    "INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at, "
    "cancel_requested, owner, parent_id, concurrency_key, batch_id, rate_key, args_version, meta) "
    "VALUES (?, ?, ?, 'pending', ?, 0, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)"
)
# A job with a unique key, alone: as PG_ENQUEUE_UNIQUE, in two statements under the write
# lock (the holder's look sees what the insert saw).
SQLITE_UNIQUE_JOB_INSERT = SQLITE_JOB_INSERT.replace(
    "args_version, meta)", "args_version, meta, unique_key, unique_until, unique_expires_at)", 1
).replace(
    "?, ?, ?)", f"?, ?, ?, ?, ?, ?) ON CONFLICT (unique_key) WHERE {UNIQUE_HELD} DO NOTHING", 1)
_LIVE_HOLDER = (
    "SELECT {columns} FROM activejob_jobs WHERE unique_key = {key} AND " + UNIQUE_HELD +
    " AND (unique_until IS NULL OR unique_until <> 'time' OR unique_expires_at > {now})"
)
"""The job holding a key that is still held: a key held for a time that is over lets go only
on the general path, which marks it expired (both fast paths' look)."""
SQLITE_LIVE_HOLDER = _LIVE_HOLDER.format(columns="id, name", key="?", now="?")


def sqlite_finish(jobs: int) -> str:
    """One outcome written to `jobs` jobs (params: the outcome's seven values, the ids, then
    (id, token) pairs): outcomes alike (a no-op's `completed`, no result) share a statement.
    Each job is still fenced by its own lease token; `id IN` keeps it on the primary key.
    It returns `cancel_requested` as it was: a job asked to cancel does not go back to
    pending (a retry, a requeue), and the general path cancels it instead."""
    pairs = " ".join(["WHEN ? THEN ?"] * jobs)
    return (
        "UPDATE activejob_jobs SET status = ?, result = ?, error = ?, traceback = ?, finished_at = ?, "
        "worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, run_at = coalesce(?, run_at), "
        "attempts = attempts - ? "
        f"WHERE id IN ({', '.join('?' * jobs)}) AND status = 'running' AND lease_token = CASE id {pairs} END "
        "RETURNING id, name, queue, owner, status, attempts, parent_id, has_dependents, cancel_requested"
    )


SQLITE_BATCHES_OPEN = (
    "SELECT id, finished_at IS NULL AND cancelled_at IS NULL FROM activejob_batches WHERE id IN ({ids})"
)
"""Which of the batches named exist, and whether each is still open (the write lock is held)."""

SQLITE_ENQUEUED_EVENTS = (
    "INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at) "
    "SELECT id, 'enqueued', name, queue, owner, 'pending', 0, ?, ? FROM activejob_jobs "
    "WHERE id BETWEEN ? AND ? ORDER BY id"
)
"""The `enqueued` events of a bulk enqueue's jobs (ids first to last) when all share one
event data: read back from the rows just written rather than sent again, a thousand rows
of parameters bound from Python a call (params: the data, the time, the first and last id)."""


def sqlite_event_insert(rows: int) -> str:
    """EVENT_INSERT for `rows` rows in one statement (9 params a row)."""
    return EVENT_INSERT.replace("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


def sqlite_pick(names: int, queues: Sequence[bool]) -> str:
    """The ids of up to LIMIT due jobs among `names` job names, in claim order, of any queue
    (`queues` empty) or of named queues, one branch each (`True` where that queue is the
    default one). Parameters: the time and the names (any queue), or per branch its queue,
    the time, the names and the limit; then the limit."""
    # INDEXED BY: without statistics SQLite may pick the (status, finished_at) index
    # and sort every pending row; the due index yields them in claim order.
    in_names = f"name IN ({', '.join('?' * names)})"
    if not queues:
        return (f"SELECT id FROM activejob_jobs INDEXED BY ix_activejob_jobs_due WHERE status = 'pending' "
                f"AND run_at <= ? AND {in_names} AND {_NOT_PAUSED} ORDER BY priority DESC, run_at, id LIMIT ?")
    # A worker of named queues takes each queue's first jobs and keeps the best of them:
    # `queue IN (...)` on the due index walked past every other queue's due jobs (190 ms
    # a claim behind 500,000 of the default queue's, holding the write lock). A named
    # queue's branch seeks into the named-queue index (the `queue <> 'default'` term lets
    # SQLite use that partial index); the default queue's walks the due index, where the
    # other queues' rows are the few.
    branches = []
    for default in queues:
        source = ("INDEXED BY ix_activejob_jobs_due WHERE queue = ?" if default else
                  f"INDEXED BY ix_activejob_jobs_named_queue_due WHERE queue = ? AND {SQLITE_NAMED_QUEUE_WHERE}")
        branches.append(f"SELECT * FROM (SELECT id, priority, run_at FROM activejob_jobs {source} "
                        f"AND status = 'pending' AND run_at <= ? AND {in_names} AND {_NOT_PAUSED} "
                        "ORDER BY priority DESC, run_at, id LIMIT ?)")
    return f"SELECT id FROM ({' UNION ALL '.join(branches)}) ORDER BY priority DESC, run_at, id LIMIT ?"


def sqlite_claim(names: int, queues: Sequence[bool]) -> str:
    """The claim of the jobs `sqlite_pick` gives, in one statement. Parameters: worker,
    token, expiry, start time, then the pick's."""
    # `+status` keeps the UPDATE on rowid lookups instead of walking every pending row
    # through the due index.
    return _SQLITE_CLAIM.format(where=f"id IN ({sqlite_pick(names, queues)}) AND +status = 'pending'")


def sqlite_claim_found(jobs: int) -> str:
    """The claim of `jobs` jobs a look found in a read transaction (`sqlite_pick`): those of
    them still pending, due and outside paused queues. Parameters: worker, token, expiry,
    start time, the ids, then the time."""
    return _SQLITE_CLAIM.format(where=f"id IN ({', '.join('?' * jobs)}) AND status = 'pending' "
                                      f"AND run_at <= ? AND {_NOT_PAUSED}")


_NOT_PAUSED = "queue NOT IN (SELECT queue FROM activejob_paused_queues)"

_SQLITE_CLAIM = (
    "UPDATE activejob_jobs SET status = 'running', attempts = attempts + 1, worker_id = ?, "
    "lease_token = ?, lease_expires_at = ?, started_at = ?, cancel_requested = 0, "
    # A new attempt starts with no progress: the last attempt's bar is not this one's.
    "progress = NULL, progress_message = NULL, progress_phase = NULL, progress_current = NULL, "
    "progress_total = NULL "
    "WHERE {where} "
    "RETURNING id, name, queue, owner, args, attempts, max_retries, checkpoint, parent_id, "
    "batch_id, args_version, meta"
)


# A bulk enqueue's jobs come as one JSON text (`enqueue.jobs_json`), an array per job in the
# order its fields name: not fourteen arrays, which psycopg dumps element by element in Python (6 us a job),
# nor objects as the outcomes of PG_FINISH_CTES, whose keys made a large bulk enqueue's text
# twice as long (a call of 200,000 jobs peaked 245 MB above its start, 191 MB now, 176 MB
# with the arrays); jsonb, whose elements are read by position at once, where json parses
# each element again for every field (a third slower).


def _jobs_from_json(fields: str) -> str:
    """The CTE `t`: the rows of the JSON text `%(jobs)s`, an array each, whose positions are
    `fields` in order ("name", or "priority::int" for a cast), with `ord`, the row's place.

    >>> print(_jobs_from_json("name priority::int"))
    t AS (
        SELECT e->>0 AS name, (e->>1)::int AS priority, ord
          FROM jsonb_array_elements(%(jobs)s::jsonb) WITH ORDINALITY AS r(e, ord)
    )
    """
    columns = []
    for i, field in enumerate(fields.split()):
        name, _, cast = field.partition("::")
        columns.append(f"(e->>{i})::{cast} AS {name}" if cast else f"e->>{i} AS {name}")
    return (f"t AS (\n    SELECT {', '.join(columns)}, ord\n"
            "      FROM jsonb_array_elements(%(jobs)s::jsonb) WITH ORDINALITY AS r(e, ord)\n)")


ENQUEUE_FIELDS = ("name queue priority::int args max_retries::int run_at::timestamptz owner parent_id::bigint "
                  "concurrency_key data batch_id::bigint rate_key args_version::int meta")
"""PG_ENQUEUE's array per job (`enqueue.jobs_json` writes them): the job's columns and its
`enqueued` event's data."""

PG_ENQUEUE = f"""
WITH {_jobs_from_json(ENQUEUE_FIELDS)}, j AS (
    INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at,
                                cancel_requested, owner, parent_id, concurrency_key, batch_id, rate_key,
                                args_version, meta)
    SELECT name, queue, priority, 'pending', args, 0, max_retries, run_at, %(now)s, false, owner, parent_id,
           concurrency_key, batch_id, rate_key, args_version, meta
      FROM t ORDER BY ord
    RETURNING id, name, queue, owner
), e AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT j.id, 'enqueued', j.name, j.queue, j.owner, 'pending', 0, t.data, %(now)s
      FROM (SELECT j.*, row_number() OVER (ORDER BY j.id) AS rn FROM j) AS j JOIN t ON t.ord = j.rn
     ORDER BY j.id
    RETURNING id, job_id
)
SELECT e.job_id, e.id FROM e{PG_NOTIFY_JOIN}
ORDER BY e.job_id
"""

# The general path's first go at a bulk enqueue's unique keys (one job a key): each job
# inserted unless its key is held, the inserted ones' ids and keys returned; the others (none
# comes back for them) go on to be looked at one by one. Read from JSON as PG_ENQUEUE is:
# psycopg splits a query's placeholders in Python, 30 ms for a thousand rows of twenty.
FREE_KEYS_FIELDS = ("name queue priority::int status args max_retries::int run_at::timestamptz owner "
                    "parent_id::bigint concurrency_key batch_id::bigint rate_key args_version::int meta unique_key "
                    "unique_until unique_expires_at::timestamptz")
"""PG_INSERT_FREE_KEYS's array per job (`Enqueuing._insert_free_keys` writes them)."""

PG_INSERT_FREE_KEYS = f"""
WITH {_jobs_from_json(FREE_KEYS_FIELDS)}
INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at,
                            cancel_requested, owner, parent_id, concurrency_key, batch_id, rate_key, args_version,
                            meta, unique_key, unique_until, unique_expires_at)
SELECT name, queue, priority, status, args, 0, max_retries, run_at, %(now)s, false, owner, parent_id,
       concurrency_key, batch_id, rate_key, args_version, meta, unique_key, unique_until, unique_expires_at
  FROM t ORDER BY ord
    ON CONFLICT (unique_key) WHERE {UNIQUE_HELD} DO NOTHING
RETURNING id, unique_key
"""

# Members of batches: inserted only if every batch they name is still open, read under a
# share lock on the batch's row, which settling a batch takes for update (all or nothing:
# no row at all comes back when one batch is closed, and the caller says which).
PG_ENQUEUE_IN_BATCHES = PG_ENQUEUE.replace("""
), j AS (""", """
), wanted AS MATERIALIZED (
    SELECT DISTINCT batch_id FROM t WHERE batch_id IS NOT NULL
), open AS MATERIALIZED (
    SELECT id FROM activejob_batches
     WHERE id IN (SELECT batch_id FROM wanted) AND finished_at IS NULL AND cancelled_at IS NULL
       FOR SHARE
), j AS (""", 1).replace("""
      FROM t ORDER BY ord""", """
      FROM t WHERE (SELECT count(*) FROM open) = (SELECT count(*) FROM wanted) ORDER BY ord""", 1)

PG_ENQUEUE_ONE = f"""
WITH j AS (
    INSERT INTO activejob_jobs (name, queue, priority, status, args, attempts, max_retries, run_at, created_at,
                                cancel_requested, owner, parent_id, concurrency_key, batch_id, rate_key,
                                args_version, meta)
    VALUES (%(name)s, %(queue)s, %(priority)s, 'pending', %(args)s, 0, %(max_retries)s, %(run_at)s, %(now)s,
            false, %(owner)s, %(parent_id)s, %(concurrency_key)s, %(batch_id)s, %(rate_key)s,
            %(args_version)s, %(meta)s)
    RETURNING id, name, queue, owner
), e AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, 'enqueued', name, queue, owner, 'pending', 0, %(data)s, %(now)s FROM j
    RETURNING id, job_id
)
SELECT e.job_id, e.id FROM e{PG_NOTIFY_JOIN}
"""

# A job with a unique key, alone (perform_later): inserted unless its key is held, in one
# statement, as a plain job is. A conflict returns instead the holder that is live (a key
# held for a time that is over lets go only on the general path, which marks it expired),
# or nothing when the holder let go between the insert and the look: the caller then takes
# the general path, which does what the unique mode says. The look reads the statement's
# snapshot, so a holder committed while the insert waited for it is not seen: again the
# general path. Plain jobs keep PG_ENQUEUE_ONE: ON CONFLICT inserts speculatively, which
# costs an insert a WAL record more.
PG_ENQUEUE_UNIQUE = PG_ENQUEUE_ONE.replace(
    "args_version, meta)\n", "args_version, meta, unique_key, unique_until, unique_expires_at)\n", 1
).replace(
    "%(args_version)s, %(meta)s)\n",
    "%(args_version)s, %(meta)s, %(unique_key)s, %(unique_until)s, %(unique_expires_at)s)\n"
    f"    ON CONFLICT (unique_key) WHERE {UNIQUE_HELD} DO NOTHING\n", 1
).replace("SELECT e.job_id, e.id FROM e", "SELECT e.job_id, e.id, NULL, NULL FROM e", 1) + (
    "UNION ALL\n"
    + _LIVE_HOLDER.format(columns="NULL, NULL, id, name", key="%(unique_key)s", now="%(now)s")
    + " AND NOT EXISTS (SELECT FROM j)\n")

# Paused queues: `coalesce(..., true)` changes nothing (queue is never NULL) but hides the
# test from the planner's estimates. Without it a generic plan guesses that the test drops
# nearly every row and sorts the whole pending set instead of reading the due index.
PG_PICK_ANY_QUEUE = """
    SELECT id FROM activejob_jobs
     WHERE status = 'pending' AND run_at <= %(now)s AND name = ANY(%(names)s)
       AND coalesce(queue <> ALL(ARRAY(SELECT queue FROM activejob_paused_queues)), true)
     ORDER BY priority DESC, run_at, id
     LIMIT %(limit)s FOR UPDATE SKIP LOCKED"""
# A worker of named queues takes each queue's first jobs from the queue's own index and
# keeps the best of them: `queue = ANY(...)` would walk the due index past every other
# queue's backlog (a mail worker behind 500,000 due `default` jobs: 120 ms a claim). Each
# queue is a branch with its name written in, not a parameter: only then can the planner
# see (from the column's statistics) that a queue is rare and the walk long; for an unseen
# value it assumes every row matches and walks. A paused queue's branch stops at its
# one-time test, so none of its rows is even locked.
def pg_pick_queues(queues: Sequence[str]) -> str:
    """The pick of PG_CLAIM_CTES for a worker of `queues` (each named once)."""
    return _pg_best_of(
        f"queue = {_pg_text(q)} AND status = 'pending' AND run_at <= %(now)s AND name = ANY(%(names)s)"
        f" AND NOT EXISTS (SELECT FROM activejob_paused_queues WHERE queue = {_pg_text(q)})"
        for q in queues)


# The same shape, one branch per job type, from each type's own index: for a worker whose
# types wait behind a big due backlog of types it does not run (a deploy that added a
# type, old workers still running; workers split by type). `name = ANY(...)` walks the
# due index past all of them: 38 to 86 ms a claim behind 200,000. A branch costs a seek, so
# a worker of many types pays for as many (see WorkerStore.note_due).
def pg_pick_names(names: Sequence[str]) -> str:
    """The pick of PG_CLAIM_CTES for a worker of every queue that reads each of `names`'
    own index (ix_activejob_jobs_name_due)."""
    return _pg_best_of(
        f"name = {_pg_text(n)} AND status = 'pending' AND run_at <= %(now)s"
        " AND coalesce(queue <> ALL(ARRAY(SELECT queue FROM activejob_paused_queues)), true)"
        for n in dict.fromkeys(names))


def pg_pick(names: Sequence[str], queues: Sequence[str], per_type: bool) -> str:
    """The pick of PG_CLAIM_CTES: by queue for a worker of named queues, else by type when
    `per_type`, else one walk of the due index."""
    if queues:
        return pg_pick_queues(queues)
    return pg_pick_names(names) if per_type else PG_PICK_ANY_QUEUE


def pick_key(verb: Any, names: Sequence[str], queues: Sequence[str], per_type: bool) -> tuple[Any, ...]:
    """What a statement built on `pg_pick` is cached under: the names are written into it
    only when it picks by type."""
    return (verb, tuple(queues)) if queues or not per_type else (verb, tuple(queues), tuple(names))


def _pg_best_of(wheres: Iterable[str]) -> str:
    """The best `%(limit)s` due jobs over branches, each its own first `%(limit)s` (locked,
    skipping those another claim holds)."""
    branches = [
        f"SELECT * FROM (SELECT id, priority, run_at FROM activejob_jobs WHERE {where}"
        " ORDER BY priority DESC, run_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS q"
        for where in wheres
    ]
    return ("\n    SELECT id FROM (" + "\n    UNION ALL ".join(branches) + ") AS p"
            "\n     ORDER BY priority DESC, run_at, id LIMIT %(limit)s")


def _pg_text(value: str) -> str:
    """`value` as a PostgreSQL string literal inside a statement psycopg fills in (quotes
    doubled, `%` doubled for psycopg's placeholders; standard_conforming_strings keeps
    backslashes literal)."""
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


PG_CLAIM_CTES = """
picked AS MATERIALIZED ({pick}
), c AS (
    UPDATE activejob_jobs AS j
       SET status = 'running', attempts = j.attempts + 1, worker_id = %(worker)s, lease_token = %(claim_token)s,
           lease_expires_at = %(expires)s, started_at = %(now)s, cancel_requested = false,
           progress = NULL, progress_message = NULL, progress_phase = NULL, progress_current = NULL,
           progress_total = NULL
     WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND j.status = 'pending'
    RETURNING j.id, j.name, j.queue, j.owner, j.args, j.attempts, j.max_retries, j.checkpoint, j.parent_id,
              j.batch_id, j.args_version, j.meta
), ce AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, 'started', name, queue, owner, 'running', attempts, %(start_data)s, %(now)s FROM c ORDER BY id
    RETURNING id, job_id
)"""
PG_CLAIM = "WITH " + PG_CLAIM_CTES + """
SELECT c.id, c.name, c.queue, c.owner, c.args, c.attempts, c.max_retries, c.checkpoint, c.parent_id, ce.id,
       c.batch_id, c.args_version, c.meta
  FROM c JOIN ce ON ce.job_id = c.id {notify}
 ORDER BY c.id
"""

# Jobs with a parent are left to the general path (their parent may have to wake up, in
# the same transaction). Rows are locked in id order, as everywhere, so concurrent
# heartbeats and outcome writes cannot deadlock. The lease token alone fences a write:
# it is unique to one claim and cleared whenever a job leaves `running`; a `status =
# 'running'` test would also let the planner walk the leases index, dead entries and all.
#
# Every row is reached through the primary key (`id = ANY(...)`), so the one plan that
# makes sense is also the generic plan a worker's connection reuses (see aio.py).
#
# The outcomes come as one JSON text (`outcomes_json`), not as ten arrays: psycopg dumps each
# array element by element in Python, 70 us a statement here, on the worker's event loop
# between one statement and the next; json.dumps of the same is 4 us.
PG_FINISH_CTES = """
o AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%(outcomes)s::json)
           AS o(id bigint, token text, status text, result text, error text, traceback text, run_at timestamptz,
                refund int, event text, data text)
), locked AS MATERIALIZED (
    SELECT id FROM activejob_jobs WHERE id = ANY(ARRAY(SELECT id FROM o)) AND parent_id IS NULL
       AND NOT (cancel_requested AND id = ANY(ARRAY(SELECT id FROM o WHERE status = 'pending')))
     ORDER BY id FOR UPDATE
), u AS (
    UPDATE activejob_jobs AS j
       SET status = o.status, result = o.result, error = o.error, traceback = o.traceback,
           finished_at = CASE WHEN o.status IN ('completed', 'failed', 'cancelled') THEN %(now)s::timestamptz END,
           worker_id = NULL, lease_token = NULL, lease_expires_at = NULL, run_at = coalesce(o.run_at, j.run_at),
           attempts = j.attempts - o.refund
      FROM o
     WHERE j.id = ANY(ARRAY(SELECT id FROM locked)) AND j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.name, j.queue, j.owner, j.status, j.attempts, o.event, o.data, j.has_dependents
), fe AS (
    INSERT INTO activejob_events (job_id, type, name, queue, owner, status, attempt, data, created_at)
    SELECT id, event, name, queue, owner, status, attempts, data, %(now)s FROM u ORDER BY id
    RETURNING id, job_id, type, name, queue, owner, status, attempt
)"""
PG_FINISH = "WITH " + PG_FINISH_CTES + """
SELECT fe.id, fe.job_id, fe.type, fe.name, fe.queue, fe.owner, fe.status, fe.attempt, u.has_dependents
  FROM fe JOIN u ON u.id = fe.job_id {notify}
"""
# Both in one statement: one round trip and one commit per batch of outcomes. The claim
# cannot touch the rows being finished (it takes pending rows of the same snapshot).
PG_FINISH_AND_CLAIM = "WITH " + PG_FINISH_CTES + "," + PG_CLAIM_CTES + """
SELECT 'f' AS kind, fe.id AS event_id, fe.job_id, fe.type, fe.name, fe.queue, fe.owner, fe.status, fe.attempt,
       NULL::text AS args, NULL::int AS max_retries, NULL::text AS checkpoint, NULL::bigint AS parent_id,
       NULL::bigint AS batch_id, NULL::int AS args_version, NULL::text AS meta, u.has_dependents
  FROM fe JOIN u ON u.id = fe.job_id
UNION ALL
SELECT 'c', ce.id, c.id, 'started', c.name, c.queue, c.owner, 'running', c.attempts, c.args, c.max_retries,
       c.checkpoint, c.parent_id, c.batch_id, c.args_version, c.meta, NULL
  FROM c JOIN ce ON ce.job_id = c.id
UNION ALL
SELECT 'n', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
  FROM {notify}
"""


# -- connection plumbing, used by dialects.py -------------------------------------------

SQLITE_WAL = "PRAGMA journal_mode=WAL"
"""Readers never block the writer (set once per database file; an in-memory one has no journal)."""

SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")
"""The durability levels a store offers (the `sqlite_synchronous` setting). NORMAL: in WAL mode
a commit is synced at the next checkpoint, so an application crash loses nothing, a power loss
may lose the last commits (the file stays consistent). FULL: synced at each commit, at the cost
of an fsync per commit. OFF is not offered: a power loss could corrupt the file."""


def sqlite_settings(synchronous: str) -> tuple[str, ...]:
    """Every SQLite connection's own settings, which SQLite keeps per connection, not in the
    file: how durable a commit is, a writer waits up to 30 s for the lock instead of failing
    at once, and SQLite checkpoints inside a commit only past the backstop, the store's own
    thread doing it before then (checkpoints.py)."""
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}, got {synchronous!r}")
    return (f"PRAGMA synchronous={synchronous}", "PRAGMA busy_timeout=30000",
            f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")

SQLITE_BEGIN_READ = "BEGIN DEFERRED"
SQLITE_BEGIN_WRITE = "BEGIN IMMEDIATE"

SQLITE_DATA_VERSION = "PRAGMA data_version"
"""A number that changes whenever another connection commits: how a SQLite watcher notices writes."""


def pg_notify(channel: str, payload: str = "") -> str:
    """Wake the listeners of `channel` when this transaction commits."""
    quoted = payload.replace("'", "''")
    return f"NOTIFY {channel}, '{quoted}'"


def pg_listen(channel: str) -> str:
    return f"LISTEN {channel}"
