"""`EventRelay`: follow the durable event log and replay it as signals in any process.

Workers write every event to the log (`activejob_events`) in the same transaction as the
change it describes. A relay follows that log, so a process that runs no jobs (a web
server, a dashboard) still sees everything that happens anywhere:

    relay = EventRelay(queue)            # or EventRelay("postgresql://...")
    relay.start()                        # a background thread; or `async with relay:` in a loop

    @signals.job_progress.connect
    def moved(sender, **event): ...      # fires here for jobs run by any worker process

and hands the same events to async consumers (the WebSocket API), each with its own
filter and an optional replay of what it missed:

    async with relay.subscribe(job_id=42, since=last_cursor) as events:
        async for item in events:        # RelayedEvent: .record (EventRecord), .cursor
            ...

How it follows the log: on PostgreSQL every transaction that appends events sends
`NOTIFY activejob_events`, and the relay LISTENs; on SQLite it watches `PRAGMA
data_version`. Either way it also polls every `poll_interval` seconds as a safety net.

Gaps. Ids come from a sequence, but on PostgreSQL transactions commit in any order: id 11
can be visible while id 10 is still in flight. The relay keeps a *cursor*: every event
with an id up to the cursor has been delivered (or given up on). Events above the
cursor are delivered as soon as they are seen and remembered; missing ids between the
cursor and the newest event seen are fetched again on every poll, and only when a gap
has stayed empty for `gap_timeout` seconds (a rolled-back transaction, a deleted job)
does the cursor move past it. Each `RelayedEvent` carries the cursor at the time it was
delivered: resuming with `since=cursor` can repeat an event (drop it by id) but never
loses one.

Signals are sent once per process: events this process wrote itself (its own JobQueue
already sent them) are skipped, unless `skip_local=False`. Internal events
(`signals.INTERNAL_EVENTS`, e.g. checkpoints) are never forwarded.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from . import clock, dialects, emit
from .records import EventRecord
from .signals import INTERNAL_EVENTS
from .store import EVENTS_CHANNEL, Store
from .subscriptions import RelayedEvent, Subscription, resume_cursor, subscription_key

if TYPE_CHECKING:
    from .queue import JobQueue

log = logging.getLogger("activejob.relay")

__all__ = ["EventRelay", "RelayedEvent", "Subscription", "resume_cursor", "subscription_key"]


class _EventWatcher(dialects.ChangeWatcher):
    """ChangeWatcher, LISTENing on the events channel instead of the enqueue channel."""

    channel = EVENTS_CHANNEL
    application_name = "activejob-relay"


class EventRelay:
    """Follows the durable event log and re-emits every new event, in this process, as
    its blinker signal, and to async subscribers (`subscribe`).

    `source`: a JobQueue, a Store, or a database URL (default: the process-wide queue).
    Run it with `start()`/`stop()` (a thread of its own), `async with relay:` or
    `await relay.run()` (the current event loop).
    """

    def __init__(self, source: JobQueue | Store | str | None = None, *, emit_signals: bool = True,
                 skip_local: bool = True, poll_interval: float = 1.0, gap_timeout: float = 5.0,
                 gap_poll_interval: float = 0.1, watch: bool = True, batch: int = 500,
                 start_at: int | None = None) -> None:
        emit.expect_relay()  # this process now remembers the events it writes (skip_local)
        self._source = source
        self._store: Store | None = source if isinstance(source, Store) else None
        self._owns_store = False
        self.emit_signals = emit_signals
        self.skip_local = skip_local
        self.poll_interval = poll_interval
        self.gap_timeout = gap_timeout
        self.gap_poll_interval = gap_poll_interval
        self.watch = watch
        self.batch = batch
        self.start_at = start_at
        self._cursor: int | None = None
        self._max_seen = 0
        self._seen: dict[int, float] = {}  # ids above the cursor already delivered -> first seen
        self._heap: list[int] = []
        self._last_reset_check = 0.0
        self._subs_lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}  # by Subscription.key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._running = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EventRelay {state} cursor={self._cursor}>"

    # -- where the events come from --------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            source = self._source
            if isinstance(source, str):
                self._store = Store(source)
                self._owns_store = True
            else:
                from .queue import JobQueue

                queue = source if isinstance(source, JobQueue) else JobQueue.get()
                self._store = queue.store
        return self._store

    @property
    def cursor(self) -> int:
        """Every event with an id up to this one has been delivered (or given up on)."""
        return self._cursor or 0

    @property
    def running(self) -> bool:
        return self._running.is_set()

    @property
    def settled(self) -> int | None:
        """The cursor, while the relay runs: every event up to it is committed and seen. None
        when it does not run (a cursor it kept from before may be far behind, or 0)."""
        return self.cursor if self.running else None

    def since_now(self) -> int:
        """A `since` for a view read from the database after this call returns: every event
        after it is replayed to a subscriber, so nothing that happens meanwhile is lost."""
        settled = self.settled
        return resume_cursor(self.store.last_event_id(), after=0, settled=settled)

    def events(self, *, after: int = 0, job_id: int | None = None, owner: str | None = None,
               limit: int = 500, batch_id: int | None = None) -> list[EventRecord]:
        """Stored events after `after`, oldest first, internal ones left out (sync)."""
        return self.store.events(after=after, job_id=job_id, owner=owner, batch_id=batch_id,
                                 exclude=tuple(INTERNAL_EVENTS), limit=limit)

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, *, job_id: int | None = None, owner: str | None = None, since: int | None = None,
                  buffer: int = 1000, batch_id: int | None = None) -> Subscription:
        """Events of one job, of one batch (its own and its members'), of one owner, or all
        of them (none given), from now on, or from after event id `since` (a replay from
        the log first). Close it when done (`async with relay.subscribe(...) as events:` does)."""
        sub = Subscription(self, job_id=job_id, owner=owner, since=since, buffer=buffer, batch_id=batch_id)
        with self._subs_lock:
            self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._subs_lock:
            group = self._subs.get(sub.key)
            if group is not None:
                group.discard(sub)
                if not group:  # job ids come and go: keep no empty set per finished job
                    del self._subs[sub.key]

    @property
    def subscribers(self) -> int:
        with self._subs_lock:
            return sum(map(len, self._subs.values()))

    def _publish(self, item: RelayedEvent) -> None:
        r = item.record
        keys = [subscription_key(None, None)]
        if r.job_id is not None:
            keys.append(subscription_key(r.job_id, None))
        if r.batch_id is not None:
            keys.append(subscription_key(None, None, r.batch_id))
        if r.owner is not None:
            keys.append(subscription_key(None, r.owner))
        with self._subs_lock:
            targets = [sub for key in keys for sub in self._subs.get(key, ())]
        for sub in targets:
            sub._push(item)

    # -- running -----------------------------------------------------------------------

    def _poke(self, _payload: str = "") -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    async def run(self) -> None:
        """Follow the log in the current event loop until cancelled or `stop()`."""
        store = self.store
        if self._cursor is None:
            start = self.start_at
            if start is None:
                start = await anyio.to_thread.run_sync(store.last_event_id)
            self._cursor = self._max_seen = start
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        watcher = _EventWatcher(store.url, self._poke, interval=0.02) if self.watch else None
        if watcher is not None:
            watcher.start()
        self._running.set()
        log.debug("event relay following %s from event %d", store.url, self._cursor)
        failures = 0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self.poll()
                    failures = 0
                except Exception as error:  # the database is away: keep trying
                    failures += 1
                    delay = min(0.1 * 2**failures, 5.0)
                    log.warning("event relay could not read the log (%s); retrying in %.1fs", error, delay)
                    await asyncio.sleep(delay)
                    continue
                timeout = self.gap_poll_interval if self._seen else self.poll_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            self._running.clear()
            if watcher is not None:
                watcher.request_stop()  # no join here: it would block the event loop
            self._loop = None

    async def poll(self) -> int:
        """Read what is new in the log once and deliver it; returns how many were new."""
        total = 0
        while True:
            rows, more = await anyio.to_thread.run_sync(self._fetch)
            total += await self._deliver(rows)
            if not more:
                return total

    def _holes(self, limit: int = 1000) -> list[int]:
        """Ids between the cursor and the newest seen that have not appeared yet."""
        out: list[int] = []
        for event_id in range(self.cursor + 1, self._max_seen):
            if event_id not in self._seen:
                out.append(event_id)
                if len(out) >= limit:
                    break
        return out

    def _fetch(self) -> tuple[list[EventRecord], bool]:
        store = self.store
        new = store.events(after=self._max_seen, limit=self.batch)
        holes = self._holes() if self._seen else []
        late = store.events_by_id(holes) if holes else []
        if not new and not self._seen:
            now = clock.monotonic()
            if now - self._last_reset_check > 10:
                self._last_reset_check = now
                newest = store.last_event_id()
                if newest < self.cursor:  # the log was emptied and its ids started again
                    log.warning("event log ids went back from %d to %d; following from there", self.cursor, newest)
                    self._cursor = self._max_seen = newest
        return late + new, len(new) == self.batch

    async def _deliver(self, rows: list[EventRecord]) -> int:
        now = clock.monotonic()
        fresh: list[EventRecord] = []
        for record in sorted(rows, key=lambda r: r.id):
            if record.id <= self.cursor or record.id in self._seen:
                continue
            self._seen[record.id] = now
            heapq.heappush(self._heap, record.id)
            self._max_seen = max(self._max_seen, record.id)
            fresh.append(record)
        self._advance(now)
        cursor = self.cursor
        forwarded = [r for r in fresh if r.type not in INTERNAL_EVENTS]
        for record in forwarded:
            self._publish(RelayedEvent(record, min(record.id, cursor)))
        if self.emit_signals:
            url = self.store.url
            remote = [r for r in forwarded if not (self.skip_local and emit.written_here(url, r.id))]
            if remote:
                await emit.aemit(remote)
        return len(fresh)

    def _advance(self, now: float) -> None:
        """Move the cursor over delivered ids, and over gaps older than `gap_timeout`."""
        while self._heap:
            lowest = self._heap[0]
            if lowest <= self.cursor:
                heapq.heappop(self._heap)
                self._seen.pop(lowest, None)
                continue
            if lowest != self.cursor + 1:
                if now - self._seen[lowest] < self.gap_timeout:
                    return
                log.debug("event relay: no events %d..%d after %.1fs; moving on", self.cursor + 1, lowest - 1,
                          self.gap_timeout)
            heapq.heappop(self._heap)
            del self._seen[lowest]
            self._cursor = lowest
        if not self._heap:
            self._cursor = max(self.cursor, self._max_seen)

    # -- lifetimes -------------------------------------------------------------------

    async def ensure_running(self) -> None:
        """Start following in the current loop unless already running (here or in a thread)."""
        with self._start_lock:
            task = self._task
            alive = self.running or (task is not None and not task.done())
            if not alive:
                self._task = asyncio.get_running_loop().create_task(self.run(), name="activejob-relay")
        await self.wait_running()

    async def wait_running(self, timeout: float = 30.0) -> None:
        with anyio.fail_after(timeout):
            while not self.running:
                task = self._task
                if task is not None and task.done():
                    task.result()  # raise what stopped it
                    raise RuntimeError("the event relay stopped")
                await asyncio.sleep(0.005)

    async def __aenter__(self) -> EventRelay:
        await self.ensure_running()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop a relay running in this loop (started by `async with` / `ensure_running`)."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif self._thread is not None:
            await anyio.to_thread.run_sync(self.stop)

    def start(self) -> None:
        """Follow the log on a background thread of this process until `stop()`."""
        if self._thread is not None and self._thread.is_alive():
            return

        def target() -> None:
            try:
                anyio.run(self.run, backend_options=clock.backend_options())
            except Exception:
                log.exception("the event relay stopped with an error")

        self._thread = threading.Thread(target=target, name="activejob-relay", daemon=True)
        self._thread.start()
        while not self._running.wait(0.01):
            if not self._thread.is_alive():
                raise RuntimeError("the event relay could not start (see the log)")

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the background thread started by `start()`."""
        thread = self._thread
        self._stopping = True
        self._poke()
        if thread is not None:
            thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        """Stop, and release the database connections the relay opened itself."""
        self.stop()
        if self._owns_store and self._store is not None:
            self._store.dispose()
