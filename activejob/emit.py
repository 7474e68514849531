"""Sending events as signals: to sync and async receivers, never letting one break us."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from blinker import NamedSignal

from . import signals
from .definition import registry
from .records import EventRecord
from .store.base import on_events_written

log = logging.getLogger("activejob.signals")

_background: set[asyncio.Task[Any]] = set()

# Events this process wrote (and so sends as signals itself), by database: an EventRelay
# running here skips them instead of sending them twice. The store marks them through the
# hook registered below, as it writes them (before commit), so a relay can never see a row
# before its mark; the store cannot call us directly, being the layer below.
_WRITTEN_MEMORY = 100_000
_written_lock = threading.Lock()
_written: set[tuple[str, int]] = set()
_written_order: deque[tuple[str, int]] = deque()


_noting = False


def expect_relay() -> None:
    """An EventRelay exists in this process: from now on remember the events written here.
    (A process with no relay, a worker, keeps nothing: up to 13 MB otherwise, measured.)"""
    global _noting
    _noting = True


def note_written(database: str, event_ids: Iterable[int]) -> None:
    """Remember that this process wrote these events (bounded memory), if a relay may ask."""
    if not _noting:
        return
    keys = [(database, event_id) for event_id in event_ids]
    with _written_lock:
        fresh = [key for key in keys if key not in _written]
        _written.update(fresh)
        _written_order.extend(fresh)
        for _ in range(len(_written_order) - _WRITTEN_MEMORY):
            _written.discard(_written_order.popleft())


on_events_written(note_written)


def written_here(database: str, event_id: int) -> bool:
    """Whether this process wrote (and so emits itself) the event `event_id`."""
    with _written_lock:
        return (database, event_id) in _written


def sender(name: str) -> Any:
    """Who sends a job's signals: its class if registered in this process, else its name."""
    return registry.get(name) or name


def _receivers(signal: NamedSignal, sender: Any) -> list[Any]:
    if not signal.receivers:
        return []
    return list(signal.receivers_for(sender))


def _failed(signal: NamedSignal, receiver: Any) -> None:
    log.exception("receiver %r of %s raised; the job goes on", receiver, signal.name)


@lru_cache(maxsize=256)  # the table is fixed at import; asked once per event sent
def _signals_for(event: str) -> tuple[NamedSignal, ...]:
    out = [signals.BY_EVENT[event]] if event in signals.BY_EVENT else []
    if event in signals.STATUS_EVENTS and signals.job_status_changed not in out:  # "waiting" maps to it already
        out.append(signals.job_status_changed)
    return tuple(out)


def send(signal: NamedSignal, sender: Any, payload: dict[str, Any]) -> None:
    """Send from sync code. Async receivers run on this thread's loop if it has one
    (as a task), otherwise to completion in a fresh loop."""
    for receiver in _receivers(signal, sender):
        try:
            out = receiver(sender, **payload)
            if inspect.isawaitable(out):
                _finish(signal, receiver, out)
        except Exception:
            _failed(signal, receiver)


def _finish(signal: NamedSignal, receiver: Any, awaitable: Awaitable[Any]) -> None:
    async def guarded() -> None:
        try:
            await awaitable
        except Exception:
            _failed(signal, receiver)

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(guarded())
        return
    task = loop.create_task(guarded())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def asend(signal: NamedSignal, sender: Any, payload: dict[str, Any]) -> None:
    """Send from async code, awaiting async receivers."""
    for receiver in _receivers(signal, sender):
        try:
            out = receiver(sender, **payload)
            if inspect.isawaitable(out):
                await out
        except Exception:
            _failed(signal, receiver)


def _deliveries(records: Iterable[EventRecord]) -> Iterator[tuple[NamedSignal, Any, dict[str, Any]]]:
    """(signal, sender, payload) for every stored event that someone listens to."""
    for record in records:
        for signal in _signals_for(record.type):
            if signal.receivers:
                yield signal, sender(record.name), record.payload()


def emit(records: Iterable[EventRecord]) -> None:
    """Send stored events as their signals (sync callers)."""
    for signal, sender, payload in _deliveries(records):
        send(signal, sender, payload)


async def aemit(records: Iterable[EventRecord]) -> None:
    """Send stored events as their signals (async callers)."""
    for signal, sender, payload in _deliveries(records):
        await asend(signal, sender, payload)


def emit_local(event: str, sender: Any, payload: dict[str, Any]) -> None:
    """Send an event that was never stored (perform_now, checkpoints)."""
    for signal in _signals_for(event):
        send(signal, sender, {**payload, "event": event})
