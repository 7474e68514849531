"""The ways a process runs its queue's jobs, each a thin shell around one `Runner`:

    queue.start(); ...; queue.stop()    # on a background thread of this process
    async with queue: ...               # in the caller's event loop (an ASGI lifespan)
    await queue.run()                   # in the caller's event loop, until stopped
    queue.work()                        # in the foreground until SIGTERM/SIGINT (the CLI)
    queue.run_until_idle()              # until nothing is due (scripts and tests)
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from . import clock
from .definition import registry
from .runner import Runner

if TYPE_CHECKING:
    from .queue import JobQueue

log = logging.getLogger("activejob")


class Worker:
    """The in-process worker of one JobQueue: at most one Runner at a time."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.runner: Runner | None = None
        self._thread: threading.Thread | None = None
        self._task_group: Any = None

    def new_runner(self) -> Runner:
        if self.runner is not None and self.runner.state in ("running", "stopping"):
            raise RuntimeError("this JobQueue is already running")
        self.runner = Runner(self.queue.store, self.queue.settings)
        return self.runner

    # -- on a thread of this process ----------------------------------------------------

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        runner = self.new_runner()

        def target() -> None:
            try:
                anyio.run(runner.run, backend_options=clock.backend_options())
            except Exception:
                log.exception("the in-process worker stopped with an error")
            finally:
                runner.ready.set()  # never leave start() waiting on a worker that failed

        self._thread = threading.Thread(target=target, name="activejob-worker", daemon=True)
        self._thread.start()
        runner.ready.wait()

    def stop(self, grace: float | None = None, timeout: float | None = None) -> None:
        thread, runner = self._thread, self.runner
        if thread is None or runner is None:
            return
        runner.request_stop(grace=grace)
        thread.join(timeout)
        if thread.is_alive():
            # A job ignores its cancellation (or blocks the worker's loop): put what still
            # runs back to pending rather than leave it until its lease expires.
            log.error("the in-process worker did not stop in time; putting its jobs back")
            runner.abandon()
        self._thread = None

    @property
    def on_thread(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- in the caller's event loop -----------------------------------------------------

    async def aenter(self) -> None:
        runner = self.new_runner()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(runner.run)
        await anyio.to_thread.run_sync(runner.ready.wait)

    async def aexit(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                    tb: TracebackType | None) -> bool | None:
        if self.runner is not None:
            self.runner.request_stop()
        tg, self._task_group = self._task_group, None
        return await tg.__aexit__(exc_type, exc, tb)  # type: ignore[no-any-return]

    async def run(self) -> None:
        await self.new_runner().run()

    # -- in the foreground --------------------------------------------------------------

    def work(self) -> None:
        from .shutdown import serve

        serve(self.new_runner())

    # -- until nothing is due -----------------------------------------------------------

    def run_until_idle(self) -> None:
        if self.on_thread:
            self._wait_idle()
            return
        anyio.run(self.arun_until_idle, backend_options=clock.backend_options())

    async def arun_until_idle(self) -> None:
        if self.runner is not None and self.runner.state == "running":
            await anyio.to_thread.run_sync(self._wait_idle)
            return
        await self.new_runner().run(until_idle=True)

    def _wait_idle(self, poll: float = 0.02) -> None:
        """Until the running worker has nothing in flight and nothing is due. (It runs
        elsewhere: ask the database, as anyone else would.)"""
        names = list(registry)
        store, queues = self.queue.store, self.queue.settings.queues
        while True:
            runner = self.runner
            busy = runner is not None and bool(runner.running)
            if not busy and store.due_count(clock.now(), names, queues) == 0:
                return
            threading.Event().wait(poll)
