"""Every SQL statement of activejob, spoken as job verbs.

enqueue, claim, finish (complete / retry / fail / cancel / requeue), save_progress,
heartbeat, recover_expired, request_cancel, retry_job, delete, prune, and the reads.
Each change of a job's state is one UPDATE guarded by the state (and, for running
jobs, the lease token) it expects, and appends its event row in the same transaction.
Verbs return the events they wrote; the caller turns them into signals after commit.

The verbs live in one module per concern, composed here into `Store`: `enqueue.py`,
`claim.py`, `finish.py`, `leases.py` (progress, heartbeat, recovery), `parents.py`,
`admin.py` (cancel, retry, delete),
`batches.py` and `dependencies.py` (workflows), `maintenance.py` (prune), `queues.py` (pause, resume),
`worker_registry.py`, `reads.py`, `explain.py` (why a job is not running) and `activity.py`
(the last hour per minute, from the event log); `base.py` holds the engine and transactions,
`dbapi.py` and `sql.py` the hot paths' raw driver access and hand-written SQL for each
dialect, and `aio.py` a worker's own PostgreSQL connection on its event loop, for the hot
paths it runs for every batch.
"""

from __future__ import annotations

from .activity import Activity
from .aio import LoopConnection
from .base import EVENTS_CHANNEL, PENDING, RUNNING, events, jobs, paused, unreachable, workers
from .batches import Batches
from .dbapi import WouldBlock
from .enqueue import Enqueuing
from .explain import ExplainFacts, Explaining, RateUse
from .finish import Finishing, HotBatch
from .leases import Leases
from .maintenance import Maintenance
from .queues import Queues
from .reads import Reads
from .values import Heartbeat, NewJob, Outcome, ProgressUpdate
from .worker_registry import hostname

__all__ = [
    "EVENTS_CHANNEL",
    "PENDING",
    "RUNNING",
    "ExplainFacts",
    "Heartbeat",
    "HotBatch",
    "LoopConnection",
    "NewJob",
    "Outcome",
    "ProgressUpdate",
    "RateUse",
    "Store",
    "WouldBlock",
    "events",
    "hostname",
    "jobs",
    "paused",
    "unreachable",
    "workers",
]


class Store(Batches, Enqueuing, Finishing, Leases, Maintenance, Queues, Reads, Explaining, Activity):
    """The database behind a JobQueue. Thread-safe; every method is synchronous."""
