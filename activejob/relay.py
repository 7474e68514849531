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
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from . import clock, dialects, dispatch
from .records import EventRecord
from .signals import INTERNAL_EVENTS
from .store import EVENTS_CHANNEL, Store

if TYPE_CHECKING:
    from .queue import JobQueue

log = logging.getLogger("activejob.relay")

__all__ = ["EventRelay", "RelayedEvent", "Subscription"]


@dataclass(frozen=True, slots=True)
class RelayedEvent:
    """One event as a consumer receives it.

    `cursor` is where to resume after this event: every event with an id up to `cursor`
    was delivered no later than this one (`since=cursor` may repeat some, never skips one).
    """

    record: EventRecord
    cursor: int

    @property
    def id(self) -> int:
        return self.record.id

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of an event on the API (REST and WebSocket)."""
        r = self.record
        return {
            "id": r.id, "cursor": self.cursor, "event": r.type, "job_id": r.job_id, "name": r.name,
            "queue": r.queue, "owner": r.owner, "status": r.status, "attempt": r.attempt,
            "created_at": r.created_at.isoformat(), "data": r.data,
        }


def resume_cursor(event_id: int, *, after: int, settled: int | None) -> int:
    """The cursor to hand out with event `event_id`, read by a consumer that asked for the
    events after `after`: where it can resume (`since=` / `after=`) without losing one.

    `settled` is an id up to which every event had been committed before the read: the
    relay's cursor, taken before reading (`EventRelay.settled`). Above it, an id still in
    flight may commit later, lower than ids already read (PostgreSQL commits in any order),
    so the cursor stays at `settled` and the consumer may see some events twice, never miss
    one. With nothing settled (no relay running) the id read is taken as it is. A cursor
    never goes back before `after`, where the consumer already stands.

    >>> resume_cursor(12, after=5, settled=10)   # 11 may still be in flight
    10
    >>> resume_cursor(12, after=5, settled=None)
    12
    >>> resume_cursor(12, after=11, settled=10)
    11
    """
    return max(after, event_id if settled is None else min(event_id, settled))


def subscription_key(job_id: int | None, owner: str | None) -> str:
    """`job:42`, `owner:alice`, or `all`: the name of a subscription on the wire, and its
    index in the relay. A job id wins over an owner (the owner then only filters)."""
    if job_id is not None:
        return f"job:{job_id}"
    if owner is not None:
        return f"owner:{owner}"
    return "all"


class _EventWatcher(dialects.ChangeWatcher):
    """ChangeWatcher, LISTENing on the events channel instead of the enqueue channel."""

    channel = EVENTS_CHANNEL
    application_name = "activejob-relay"


class Subscription:
    """A consumer's view of the relay: an async iterator of `RelayedEvent`s.

    Made by `EventRelay.subscribe(...)`; first replays the log after `since` (if given),
    then yields live events in the order the relay sees them. A consumer that falls
    more than `buffer` events behind is caught up from the log, not dropped.
    """

    def __init__(self, relay: EventRelay, *, job_id: int | None, owner: str | None, since: int | None,
                 buffer: int) -> None:
        self.relay = relay
        self.job_id = job_id
        self.owner = owner
        self.since = since
        self.buffer = buffer
        self.cursor = since if since is not None else relay.cursor
        """Where a consumer resumes after the last event handed out (`since=cursor`)."""
        self._items: deque[RelayedEvent] = deque()
        self._pending: deque[RelayedEvent] = deque()  # from a replay, handed out first
        self._replay_from: int | None = since
        self._overflowed = False
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self._recent: deque[int] = deque(maxlen=4096)
        self._recent_set: set[int] = set()

    @property
    def key(self) -> str:
        """`job:42`, `owner:alice`, or `all`: the name of this subscription on the wire."""
        return subscription_key(self.job_id, self.owner)

    def matches(self, record: EventRecord) -> bool:
        if record.type in INTERNAL_EVENTS:
            return False
        if self.job_id is not None and record.job_id != self.job_id:
            return False
        return self.owner is None or record.owner == self.owner

    # -- from the relay (any thread) -------------------------------------------------

    def _push(self, item: RelayedEvent) -> None:
        if self._closed or not self.matches(item.record):
            return
        if len(self._items) >= self.buffer:
            # Too far behind: forget the backlog and catch up from the log instead.
            self._items.clear()
            self._overflowed = True
        else:
            self._items.append(item)
        self._signal()

    def _signal(self) -> None:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None or loop.is_closed():
            return
        try:
            same = asyncio.get_running_loop() is loop
        except RuntimeError:
            same = False
        if same:
            ready.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)

    # -- consumer side -----------------------------------------------------------------

    def close(self) -> None:
        """Stop receiving; a pending `__anext__` ends the iteration."""
        if not self._closed:
            self._closed = True
            self.relay._unsubscribe(self)
            self._signal()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[RelayedEvent]:
        return self

    def _remember(self, event_id: int) -> bool:
        """False if this id was handed out already (a replay and the live stream overlap)."""
        if event_id in self._recent_set:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(event_id)
        self._recent_set.add(event_id)
        return True

    def _hand_out(self, item: RelayedEvent) -> RelayedEvent:
        self.cursor = max(self.cursor, item.cursor)
        return RelayedEvent(item.record, self.cursor)

    async def __anext__(self) -> RelayedEvent:
        loop = asyncio.get_running_loop()
        if self._ready is None or self._loop is not loop:
            self._loop, self._ready = loop, asyncio.Event()
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._pending:
                item = self._pending.popleft()
                if self._remember(item.id):
                    return self._hand_out(item)
                continue
            if self._replay_from is not None:
                await self._replay(self._replay_from)
                continue
            if self._overflowed:
                self._overflowed = False
                self._replay_from = self.cursor
                continue
            if self._items:
                item = self._items.popleft()
                # The relay may still be catching up on ids the consumer said it has.
                if (self.since is None or item.id > self.since) and self._remember(item.id):
                    return self._hand_out(item)
                continue
            self._ready.clear()
            if self._items or self._overflowed or self._closed:
                continue
            await self._ready.wait()

    async def _replay(self, after: int) -> None:
        page = self.relay.batch
        settled = self.relay.settled  # before the read (see resume_cursor)
        rows = await anyio.to_thread.run_sync(
            lambda: self.relay.events(after=after, job_id=self.job_id, owner=self.owner, limit=page))
        self._replay_from = rows[-1].id if len(rows) == page else None
        self._pending.extend(RelayedEvent(r, resume_cursor(r.id, after=after, settled=settled)) for r in rows)


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
               limit: int = 500) -> list[EventRecord]:
        """Stored events after `after`, oldest first, internal ones left out (sync)."""
        return self.store.events(after=after, job_id=job_id, owner=owner, exclude=tuple(INTERNAL_EVENTS),
                                 limit=limit)

    # -- subscribers -----------------------------------------------------------------

    def subscribe(self, *, job_id: int | None = None, owner: str | None = None, since: int | None = None,
                  buffer: int = 1000) -> Subscription:
        """Events of one job, of one owner, or all of them (neither given), from now on,
        or from after event id `since` (a replay from the log first). Close it when done
        (`async with relay.subscribe(...) as events:` does)."""
        sub = Subscription(self, job_id=job_id, owner=owner, since=since, buffer=buffer)
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
        keys = [subscription_key(None, None), subscription_key(r.job_id, None)]
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
            remote = [r for r in forwarded if not (self.skip_local and dispatch.written_here(url, r.id))]
            if remote:
                await dispatch.aemit(remote)
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
