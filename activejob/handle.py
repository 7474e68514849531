"""The handle `perform_later` returns: the job's id, and a few verbs on it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from . import clock
from .errors import JobNotFound

if TYPE_CHECKING:
    from .records import JobInfo


class _Reader(Protocol):
    def get_job(self, job_id: int) -> JobInfo | None: ...
    def cancel(self, job_id: int) -> str: ...


class JobHandle:
    """A job that was enqueued.

        handle = SendEmail.perform_later(to="a@example.com", subject="Hi")
        handle.id                 # the job's id
        handle.status             # "pending", "running", "completed", ...
        handle.wait(timeout=10)   # block until it finishes; returns its JobInfo
        handle.cancel()
    """

    __slots__ = ("_queue", "id", "name")

    def __init__(self, job_id: int, name: str, queue: _Reader) -> None:
        self.id = job_id
        self.name = name
        self._queue = queue

    def __repr__(self) -> str:
        return f"<JobHandle {self.name} #{self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def info(self) -> JobInfo:
        """The job as stored now."""
        info = self._queue.get_job(self.id)
        if info is None:
            raise JobNotFound(f"job {self.id} ({self.name}) no longer exists")
        return info

    @property
    def status(self) -> str:
        return self.info().status

    @property
    def result(self) -> Any:
        return self.info().result

    @property
    def error(self) -> str | None:
        """The last attempt's error, if it failed (`"ValueError: ..."`)."""
        return self.info().error

    @property
    def attempts(self) -> int:
        """Attempts made so far."""
        return self.info().attempts

    def cancel(self) -> str:
        """Cancel the job (pending: at once; running: its worker stops it). Returns its status."""
        return self._queue.cancel(self.id)

    def wait(self, timeout: float | None = None, *, poll: float = 0.05) -> JobInfo:
        """Block until the job is completed, failed or cancelled; TimeoutError after `timeout`."""
        deadline = None if timeout is None else clock.monotonic() + timeout
        while True:
            info = self.info()
            if info.finished:
                return info
            if deadline is not None and clock.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} ({self.name}) still {info.status} after {timeout}s")
            time.sleep(poll)

    async def await_finished(self, timeout: float | None = None, *, poll: float = 0.05) -> JobInfo:
        """The async twin of `wait`."""
        info: JobInfo | None = None
        with anyio.move_on_after(timeout):
            while True:
                info = await anyio.to_thread.run_sync(self.info)
                if info.finished:
                    return info
                await anyio.sleep(poll)
        raise TimeoutError(f"job {self.id} ({self.name}) still {info.status if info else 'unread'} after {timeout}s")
