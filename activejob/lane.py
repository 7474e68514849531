"""The threads a worker runs sync jobs on (`def perform`, what most jobs are).

A sync job cannot run on the event loop, and handing each one to a thread and back, as
`anyio.to_thread` does, costs two wake-ups per job. Here a job goes to a thread of the
worker's own through a queue, and the thread hands its outcome back into a list: the
loop is woken once for all the outcomes that finished meanwhile, so under load a batch of
jobs costs one wake-up. The threads are daemons: a job that never returns can keep
neither the worker nor the process from stopping.

The loop settles a job itself when it stops waiting for it (a timeout, a cancel grace
spent): `abandon` retires its thread, which may still run the job, and starts another in
its place, so the worker keeps its concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from . import clock

log = logging.getLogger("activejob.worker")


class Settles(Protocol):
    settled: bool


E = TypeVar("E", bound=Settles)
R = TypeVar("R")


class Lane(Generic[E, R]):
    """Runs `run(entry)` on threads of its own; hands back (entry, result) batches to
    `deliver`, called on `loop`. Should `run` raise, `broken(entry, error)` is the result:
    a thread never dies with its job unsettled."""

    def __init__(self, run: Callable[[E], R], deliver: Callable[[list[tuple[E, R]]], None],
                 loop: asyncio.AbstractEventLoop, *, broken: Callable[[E, BaseException], R] | None = None,
                 name: str = "activejob-job") -> None:
        self._run = run
        self._broken = broken
        self._deliver = deliver
        self._loop = loop
        self._name = name
        self._jobs: queue.SimpleQueue[E | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0  # threads that take jobs (not counting those retired by abandon)
        self._busy = 0  # jobs handed over and not yet settled
        self._done: list[tuple[E, R]] = []
        self._flush_scheduled = False
        self._where: dict[int, int] = {}  # id(entry) -> the thread running it
        self._last_submit = float("-inf")

    def fresh(self, window: float) -> bool:
        """Whether a job handed over within the last `window` seconds is still unsettled."""
        return self._busy > 0 and clock.monotonic() - self._last_submit < window

    def submit(self, entry: E) -> None:
        with self._lock:
            self._last_submit = clock.monotonic()
            self._busy += 1
            spawn = self._busy > self._threads
            if spawn:
                self._threads += 1
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
        self._jobs.put(entry)

    def abandon(self, entry: E) -> bool:
        """Stop waiting for `entry`: True if it was not settled yet (the caller settles it
        now). A thread running it finishes the job and leaves; one takes its place."""
        with self._lock:
            if entry.settled:
                return False
            entry.settled = True
            self._busy -= 1
            if self._where.pop(id(entry), None) is not None:
                self._threads -= 1
        return True

    def close(self) -> None:
        """Let the idle threads go (busy ones leave when their job returns)."""
        with self._lock:
            count = self._threads
            self._threads = 0
        for _ in range(count):
            self._jobs.put(None)

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            entry = self._jobs.get()
            if entry is None:
                return
            with self._lock:
                if entry.settled:
                    continue  # abandoned before it started: never run it
                self._where[id(entry)] = me
            try:
                result = self._run(entry)
            except BaseException as error:  # `run` settles every job itself: this is a bug, not the job's
                if self._broken is None:
                    raise
                log.exception("the sync-job thread failed: %s", error)
                result = self._broken(entry, error)
            with self._lock:
                if entry.settled:
                    return  # abandoned while it ran: another thread has taken this one's place
                del self._where[id(entry)]
                entry.settled = True
                self._busy -= 1
                self._done.append((entry, result))
                wake = not self._flush_scheduled
                self._flush_scheduled = True
            if wake:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            done, self._done = self._done, []
            self._flush_scheduled = False
        if done:
            self._deliver(done)
