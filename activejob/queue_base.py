"""What each group of `JobQueue`'s verbs works through: the settings, the store (opened on
first use), and this process's worker, to wake when jobs became due."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING

from . import clock
from .config import Settings
from .liveness import live_since
from .records import JobInfo
from .store import Store

if TYPE_CHECKING:
    from .runner import Runner
    from .worker import Worker


def an_id(value: object, what: str = "job") -> int:
    """A job's (or batch's) id as given to a JobQueue method: an int, or its digits as text
    (from a URL, a command line); anything else is refused saying so, not with int()'s words.

    >>> an_id("42")
    42
    """
    if isinstance(value, bool) or not isinstance(value, int | str) or (
            isinstance(value, str) and not value.strip().isdigit()):
        raise ValueError(f"a {what} id is a whole number, got {value!r}")
    return int(value)


class QueueBase:
    """The state `JobQueue.__init__` sets up, and what every verb group reads of it."""

    settings: Settings
    _store: Store | None
    _store_lock: threading.Lock
    _worker: Worker

    @property
    def database_url(self) -> str:
        from sqlalchemy.engine import make_url

        from .dialects import normalize_url

        return make_url(normalize_url(self.settings.database_url)).render_as_string(hide_password=True)

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    store = Store(self.settings.database_url, pool_size=self.settings.pool_size,
                                  sqlite_synchronous=self.settings.sqlite_synchronous)
                    if self.settings.auto_migrate:
                        store.upgrade()
                    self._store = store
        return self._store

    @property
    def max_args_bytes(self) -> int:
        return self.settings.max_args_bytes

    def _wake(self) -> None:
        if self._runner is not None:
            self._runner.wake()

    def _live_since(self) -> datetime:
        return live_since(clock.now(), self.settings.lease)

    @property
    def _runner(self) -> Runner | None:
        return self._worker.runner

    def get_job(self, job_id: int) -> JobInfo | None:
        """The job with this id, or None. (Here, not with the other reads: the handles every
        group hands back read their job through it.)"""
        return self.store.get(an_id(job_id))
