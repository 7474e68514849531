"""Counting the work SQLite does in virtual-machine steps (a progress handler), which, unlike
a timing, does not move with the machine's load."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from activejob.store import Store


class Steps:
    """Hundreds of steps SQLite ran on the connections given to `watch`: in all, and those
    run while the store's write lock was held (inside a write transaction of this process)."""

    def __init__(self, store: Store) -> None:
        self._lock = store._write_lock
        self._store = store
        self._tens = 0
        self.hundreds = 0
        self.locked = 0

    def _step(self) -> int:
        self.hundreds += 1
        if self._lock is not None and self._lock.locked():
            self.locked += 1
        self._tens += 1
        if self._tens == 10:  # the store's own count (steps_here) goes on meanwhile
            self._tens = 0
            self._store._count_steps()
        return 0  # go on

    def watch(self, dbapi_connection: Any, _record: Any = None) -> None:
        dbapi_connection.set_progress_handler(self._step, 100)


@contextmanager
def counting(store: Store) -> Iterator[Steps]:
    """Count the steps of the store's write connection (the fast paths) and of every pooled
    connection opened meanwhile (the general path's)."""
    steps = Steps(store)
    with store._sqlite_tx():  # opens the write connection if it is not yet
        pass
    hot = store._hot.connection
    steps.watch(hot)
    store.engine.dispose()
    event.listen(store.engine, "connect", steps.watch)
    try:
        yield steps
    finally:
        event.remove(store.engine, "connect", steps.watch)
        store.engine.dispose()
        store.watch_steps(hot)  # the store's own count again
