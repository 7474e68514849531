"""The lifecycle signals (blinker), declared once.

Every signal is sent with `sender` = the job class (or, in a process where that class
is not registered, the job's name), and keyword payload that always holds:

| key | meaning |
| --- | --- |
| `job_id` | the job's id (None under `perform_now`) |
| `name` | the job type's registered name |
| `status` | the job's status after the event |
| `attempt` | the attempt number (attempts started so far) |
| `queue`, `owner` | where the job runs, and who it belongs to |
| `event`, `event_id`, `at` | the event type, its id in the durable log, its time |

and, per signal:

| signal | extra keys |
| --- | --- |
| `job_enqueued` | `run_at` when scheduled for later |
| `job_started` | `worker_id` |
| `job_progress` | `progress`, `message`, `phase`, `current`, `total` |
| `job_log` | `message`, any data passed to `self.log(...)` (the keys above win over data of the same name) |
| `job_retrying` | `error`, `run_at`, `reason` (`worker_lost` after a recovery) |
| `job_completed` | `result` |
| `job_failed` | `error`, `traceback` (in-process) |
| `job_cancelled` | `reason` |
| `job_deleted` | |
| `job_replaced` | `mode` (`replace`, `debounce`), `changed`, `run_at`, `previous_run_at` when it moved |
| `job_status_changed` | sent with every event that sets a status, beside its own signal |
| `job_checkpoint` | `checkpoint` (internal: never in the event log or to consumers) |

A batch's own events go out as their own signals, with `sender` = `"batch"`, `job_id` None,
`name` `"batch"`, `queue` `""`, the batch's `owner`, and `batch_id`, `description`,
`total` and the members' `completed`, `failed`, `cancelled` counts at that moment:

| signal | when | `status` |
| --- | --- | --- |
| `batch_failed` | the first member failed for good (when `on_failure` is enqueued) | `failed` |
| `batch_finished` | every member has finished (when `on_complete` is enqueued) | the outcome (below) |
| `batch_cancelled` | `queue.cancel_batch(id)` | `cancelled` |

A finished batch's outcome is `completed` if every member completed, else `failed` if one
failed, else `cancelled`.

Receivers may be plain functions or `async def`; async receivers are awaited. A receiver
that raises is logged and never breaks the job, the worker or the caller.

    from activejob import signals

    @signals.job_completed.connect_via(SendEmail)
    def sent(sender, **event):
        print("sent", event["job_id"], event["result"])
"""

from __future__ import annotations

from blinker import NamedSignal, Namespace

_ns = Namespace()

job_enqueued: NamedSignal = _ns.signal("job_enqueued", doc="A job was written to the queue.")
job_started: NamedSignal = _ns.signal("job_started", doc="A worker began an attempt.")
job_progress: NamedSignal = _ns.signal("job_progress", doc="A running job reported progress.")
job_log: NamedSignal = _ns.signal("job_log", doc="A running job logged a line.")
job_retrying: NamedSignal = _ns.signal("job_retrying", doc="An attempt failed; the job will run again.")
job_completed: NamedSignal = _ns.signal("job_completed", doc="The job finished and its result is stored.")
job_failed: NamedSignal = _ns.signal("job_failed", doc="The job failed for good.")
job_cancelled: NamedSignal = _ns.signal("job_cancelled", doc="The job was cancelled.")
job_deleted: NamedSignal = _ns.signal("job_deleted", doc="The job was deleted.")
job_status_changed: NamedSignal = _ns.signal("job_status_changed", doc="Any change of a job's status.")
job_replaced: NamedSignal = _ns.signal(
    "job_replaced", doc="A pending job took a duplicate's args and run time (unique_mode replace or debounce).")
batch_failed: NamedSignal = _ns.signal("batch_failed", doc="A batch's first member failed for good.")
batch_finished: NamedSignal = _ns.signal("batch_finished", doc="Every member of a batch has finished.")
batch_cancelled: NamedSignal = _ns.signal("batch_cancelled", doc="A batch was cancelled.")
job_checkpoint: NamedSignal = _ns.signal("job_checkpoint", doc="Internal: a job saved a checkpoint.")

ALL_SIGNALS: tuple[NamedSignal, ...] = tuple(_ns.values())
"""Every signal above, in the order declared (so a new one is never missed by a helper that
connects to all of them)."""

BY_EVENT: dict[str, NamedSignal] = {
    "enqueued": job_enqueued,
    "started": job_started,
    "progress": job_progress,
    "log": job_log,
    "retrying": job_retrying,
    "completed": job_completed,
    "failed": job_failed,
    "cancelled": job_cancelled,
    "deleted": job_deleted,
    "replaced": job_replaced,
    "checkpoint": job_checkpoint,
    "requeued": job_status_changed,
    "waiting": job_status_changed,
    "batch_failed": batch_failed,
    "batch_finished": batch_finished,
    "batch_cancelled": batch_cancelled,
}
"""The signal each event type is sent as."""

BATCH_EVENTS = frozenset({"batch_failed", "batch_finished", "batch_cancelled"})
"""Event types about a batch itself: `job_id` is None, `batch_id` names the batch."""

STATUS_EVENTS = frozenset({"enqueued", "started", "retrying", "completed", "failed", "cancelled", "waiting"})
"""Event types that set a status, and so also go out as `job_status_changed`."""

INTERNAL_EVENTS = frozenset({"checkpoint"})
"""Event types never forwarded to consumers."""

__all__ = [
    "ALL_SIGNALS", "BATCH_EVENTS", "BY_EVENT", "INTERNAL_EVENTS", "STATUS_EVENTS", "batch_cancelled",
    "batch_failed", "batch_finished", "job_cancelled", "job_checkpoint",
    "job_completed", "job_deleted", "job_enqueued", "job_failed", "job_log", "job_progress",
    "job_replaced", "job_retrying", "job_started", "job_status_changed",
]
