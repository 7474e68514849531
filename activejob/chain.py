"""`chain`: jobs that run one after another, each once the one before it has completed.

    handles = chain(Fetch.set(queue="net"), (Parse, {"strict": True}), Store)
    handles[-1].wait()

A step is a job type (run with no arguments), a configured one (`Job.set(...)`), or a pair of
either and its arguments. Each step after the first is enqueued with `depends_on` the step
before it, so it waits (status `waiting`) until that one completes; if one fails or is
cancelled, the rest end `cancelled` with the reason `dependency_failed`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .enqueuing import ConfiguredJob, backend
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .handle import JobHandle


def chain(*steps: Any) -> list[JobHandle]:
    """Enqueue `steps` so each runs after the previous one completed; returns their handles."""
    if not steps:
        raise ConfigurationError("chain needs at least one step")
    configured = [_step(step) for step in steps]
    # Every step's arguments are checked (and encoded) before any step is written, so a bad
    # third step leaves no first and second behind.
    limit = backend().max_args_bytes
    for job, args in configured:
        job.request(args, max_args_bytes=limit)
    handles: list[JobHandle] = []
    for job, args in configured:
        if handles:
            job = job.set(depends_on=[*(job.depends_on or ()), handles[-1]])
        handles.append(job.perform_later(args))
    return handles


def _step(step: Any) -> tuple[ConfiguredJob[Any], Any]:
    args: Any = None
    if isinstance(step, tuple) and len(step) == 2:
        step, args = step
    if isinstance(step, ConfiguredJob):
        return step, args
    if isinstance(step, type) and hasattr(step, "options"):  # a job type
        return ConfiguredJob(step), args
    raise ConfigurationError(f"a chain step is a job type, Job.set(...) or (job, args), got {step!r}")
