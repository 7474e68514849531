"""activejob: background jobs for Python, with a durable queue in your own SQL database.

    from pydantic import BaseModel
    import activejob
    from activejob import BaseJob, job

    class EmailArgs(BaseModel):
        to: str
        subject: str

    @job("send_email", schema=EmailArgs, max_retries=3, backoff="exponential", timeout=30)
    class SendEmail(BaseJob[EmailArgs]):
        async def perform(self, args: EmailArgs) -> dict:
            self.progress(0.5, message="rendering")
            return {"sent": True}

    queue = activejob.configure(database_url="sqlite:///jobs.db")
    handle = SendEmail.perform_later(to="a@example.com", subject="Hi")
    queue.run_until_idle()
    assert queue.get_job(handle.id).status == "completed"
"""

from . import enqueuing, inline, signals
from .backoff import Exponential, Fixed, Linear
from .batch import Batch
from .callbacks import after_enqueue, after_perform, around_enqueue, around_perform, before_enqueue, before_perform
from .chain import chain
from .config import Settings
from .context import JobContext
from .definition import BaseJob, JobOptions, NoArgs, job, registry
from .enqueuing import ConfiguredJob
from .errors import (
    ActiveJobError,
    ConfigurationError,
    Discard,
    DuplicateJobError,
    EnqueueRefused,
    InvalidTransition,
    JobArgumentsError,
    JobCancelled,
    JobNotFound,
    JobTimeout,
    Retry,
    UnknownJobError,
)
from .handle import JobHandle
from .models import JobStatus
from .queue import JobQueue, configure
from .records import BatchInfo, EventRecord, JobInfo, WorkerInfo
from .recurring import Recurring, recurring
from .relay import EventRelay
from .upcasting import ArgumentsVersionError

# Definitions sit below the layer that runs jobs, so perform_now's runner is handed down here.
enqueuing.set_run_now(inline.run_now, inline.arun_now)

__version__ = "0.1.0"

__all__ = [
    "ActiveJobError",
    "ArgumentsVersionError",
    "BaseJob",
    "Batch",
    "BatchInfo",
    "ConfigurationError",
    "ConfiguredJob",
    "Discard",
    "DuplicateJobError",
    "EnqueueRefused",
    "EventRecord",
    "EventRelay",
    "Exponential",
    "Fixed",
    "InvalidTransition",
    "JobArgumentsError",
    "JobCancelled",
    "JobContext",
    "JobHandle",
    "JobInfo",
    "JobNotFound",
    "JobOptions",
    "JobQueue",
    "JobStatus",
    "JobTimeout",
    "Linear",
    "NoArgs",
    "Recurring",
    "Retry",
    "Settings",
    "UnknownJobError",
    "WorkerInfo",
    "__version__",
    "after_enqueue",
    "after_perform",
    "around_enqueue",
    "around_perform",
    "before_enqueue",
    "before_perform",
    "chain",
    "configure",
    "job",
    "recurring",
    "registry",
    "signals",
]
