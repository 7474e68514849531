"""The fan-out side of an `EventRelay`: each consumer's `Subscription`, an async iterator
of `RelayedEvent`s with its own filter, buffer and replay of what it missed.

The relay follows the log (relay.py); these hand what it sees to the consumers that
asked for it (the WebSocket API), each at its own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio

from .records import EventRecord
from .signals import INTERNAL_EVENTS

if TYPE_CHECKING:
    from .relay import EventRelay

__all__ = ["RelayedEvent", "Subscription", "resume_cursor", "subscription_key"]


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
            "id": r.id, "cursor": self.cursor, "event": r.type, "job_id": r.job_id, "batch_id": r.batch_id,
            "name": r.name,
            "queue": r.queue, "owner": r.owner, "status": r.status, "attempt": r.attempt,
            "created_at": r.created_at.isoformat(), "data": r.data,
        }


def subscription_key(job_id: int | None, owner: str | None, batch_id: int | None = None) -> str:
    """`job:42`, `batch:7`, `owner:alice`, or `all`: the name of a subscription on the wire,
    and its index in the relay. A job id wins over a batch id, and either over an owner (the
    owner then only filters)."""
    if job_id is not None:
        return f"job:{job_id}"
    if batch_id is not None:
        return f"batch:{batch_id}"
    if owner is not None:
        return f"owner:{owner}"
    return "all"


class Subscription:
    """A consumer's view of the relay: an async iterator of `RelayedEvent`s.

    Made by `EventRelay.subscribe(...)`; first replays the log after `since` (if given),
    then yields live events in the order the relay sees them. A consumer that falls
    more than `buffer` events behind is caught up from the log, not dropped.
    """

    def __init__(self, relay: EventRelay, *, job_id: int | None, owner: str | None, since: int | None,
                 buffer: int, batch_id: int | None = None) -> None:
        self.relay = relay
        self.job_id = job_id
        self.owner = owner
        self.batch_id = batch_id
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
        """`job:42`, `batch:7`, `owner:alice`, or `all`: the name of this subscription on the wire."""
        return subscription_key(self.job_id, self.owner, self.batch_id)

    def matches(self, record: EventRecord) -> bool:
        if record.type in INTERNAL_EVENTS:
            return False
        if self.job_id is not None and record.job_id != self.job_id:
            return False
        if self.batch_id is not None and record.batch_id != self.batch_id:
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
            lambda: self.relay.events(after=after, job_id=self.job_id, owner=self.owner, batch_id=self.batch_id,
                                      limit=page))
        self._replay_from = rows[-1].id if len(rows) == page else None
        self._pending.extend(RelayedEvent(r, resume_cursor(r.id, after=after, settled=settled)) for r in rows)
