"""The dashboard's whole-table reads, shared by everyone looking at it.

The counts on the jobs and queues pages and the charts' hour of events cost what the table
holds: on a million jobs (SQLite, here) the counts take about a second and the charts two.
Every open tab asks again at each status change and every few seconds, so a handful of
viewers would keep a core busy recounting. A `SharedReads` runs one read at a time per key
(those who ask while one runs share the next), and keeps using a costly result for a few
times what it cost: the server then spends at most about a fifth of a core on each, and
the numbers on a big table are a few seconds old. A read under `costly` is always run
afresh, so a small table's pages show every change at once.

    >>> now = [0.0]  # a clock of our own, for the example
    >>> reads = SharedReads(clock=lambda: now[0])
    >>> def count() -> int:
    ...     now[0] += 1.0  # a read that takes a second: its result serves for four more
    ...     return len(now)
    >>> reads.get("count", count), reads.get("count", count), now[0]
    (1, 1, 1.0)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from .. import clock as clocks

T = TypeVar("T")


class _Entry:
    __slots__ = ("fresh_until", "lock", "read_from", "value")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Any = None
        self.fresh_until = float("-inf")
        self.read_from = float("-inf")  # when the read that gave `value` began


class SharedReads:
    """Results of reads by key, each reused while it is fresh (see the module's docstring).

    `costly`: seconds from which a read's result is reused; `reuse`: for how many times its
    cost; `keys`: how many keys are remembered (a search's counts have a key of their own);
    `clock`: monotonic seconds.
    """

    def __init__(self, *, costly: float = 0.25, reuse: float = 4.0, keys: int = 64,
                 clock: Callable[[], float] = clocks.monotonic) -> None:
        self.costly, self.reuse, self.keys, self._clock = costly, reuse, keys, clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, read: Callable[[], T], *, min_age: float = 0.0) -> T:
        """`read()`'s result for `key`: the kept one while fresh, else a new one (callers at
        the same time wait for a single read). Blocks: call it from a thread. `min_age`:
        reuse any result that long, whatever it cost."""
        entry = self._entry(key)
        asked = self._clock()
        with entry.lock:
            # A read that began once this caller asked saw all it would see: cheap or not,
            # whoever waited for it takes its result.
            if self._clock() < entry.fresh_until or entry.read_from >= asked:
                return entry.value  # type: ignore[no-any-return]
            started = self._clock()
            value = read()
            ended = self._clock()
            took = ended - started
            entry.value, entry.read_from = value, started
            entry.fresh_until = ended + max(min_age, self.reuse * took if took >= self.costly else 0.0)
            return value

    def _entry(self, key: Hashable) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
                while len(self._entries) > self.keys:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
            return entry
