"""A foreground worker's stop, kept to its promise: SIGTERM or SIGINT once lets running
jobs finish within the grace; a second signal stops at once; and either way the process
ends, even when a job ignores cancellation or blocks the event loop.

The signal handlers are plain `signal.signal` handlers rather than the event loop's: an
async job that blocks the loop (`time.sleep` in `async def`) would keep a loop handler
from ever running. A `Watchdog` thread holds the deadline; past it, the jobs still
running are put back to pending (fenced by their leases) and the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio

from . import clock
from .runner import STOP_MARGIN, Runner

log = logging.getLogger("activejob.worker")

NOW_MARGIN = 2.0
"""Seconds a second signal leaves the worker to write what it can before it exits."""

ABANDON_WRITE_TIMEOUT = 5.0
"""How long the watchdog waits for the write that puts abandoned jobs back."""


class Watchdog:
    """Ends the process at a deadline, unless it has ended by then. Armed again, the
    earlier deadline wins."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._deadline: float | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        with self._changed:
            deadline = clock.monotonic() + seconds
            self._deadline = deadline if self._deadline is None else min(self._deadline, deadline)
            self._changed.notify()
            if self._thread is None:
                # A daemon: it must never be what keeps the process alive.
                self._thread = threading.Thread(target=self._watch, name="activejob-watchdog", daemon=True)
                self._thread.start()

    def disarm(self) -> None:
        """The worker stopped in time: the process is the caller's again."""
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while True:
                if self._deadline is None:
                    return
                left = self._deadline - clock.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        self.expire()

    def expire(self) -> None:
        """Put back what still runs here, then end the process."""
        stuck = len(self.runner.running)
        log.error("worker %s did not stop in time (%d job(s) ignored cancellation): putting them back "
                  "and exiting", self.runner.worker_id, stuck)
        written: list[int] = []
        writer = threading.Thread(target=lambda: written.append(self.runner.abandon()), daemon=True)
        writer.start()
        writer.join(ABANDON_WRITE_TIMEOUT)
        if stuck and not written:
            log.error("could not put the jobs back; they run again once their leases expire")
        for handler in logging.getLogger().handlers + log.handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if written or not stuck else 1)


def serve(runner: Runner) -> None:
    """Run `runner` in the foreground until SIGTERM or SIGINT (`activejob worker`)."""
    settings = runner.settings
    watchdog = Watchdog(runner)
    received: list[int] = []
    loop: asyncio.AbstractEventLoop | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            log.info("received %s: finishing running jobs (send again to stop at once)", name)
            watchdog.arm(settings.shutdown_grace + settings.cancel_grace + STOP_MARGIN)
            stop: Callable[[], None] = runner.request_stop
        else:
            log.info("received %s again: stopping now", name)
            watchdog.arm(NOW_MARGIN)
            stop = runner.stop_now
        if loop is not None:
            # Never call into the runner here: this handler may run in the middle of the loop's own code.
            loop.call_soon_threadsafe(stop)

    async def main() -> None:
        nonlocal loop
        loop = asyncio.get_running_loop()
        await runner.run()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        anyio.run(main, backend_options=clock.backend_options())
        # Sync jobs given up on run on daemon threads, which never hold the process at exit.
        watchdog.disarm()
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)
