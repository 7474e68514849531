"""SQLite's WAL checkpoints, run beside the writers instead of inside their commits.

In WAL mode a commit appends its pages to the log; a checkpoint copies them back into the
database file and, at `synchronous=NORMAL`, first syncs the log to the disk. SQLite runs it
inside the commit that takes the log past 1,000 pages, so every 200th single enqueue waited
for 4 MB to reach the disk: a sixth of all enqueues' time (60 against 48 µs a call,
measured 2026-12-07). Here a thread of the store does that work, woken once the store's
commits have written `CHECKPOINT_EVERY` rows. The sync that makes commits durable is the
same one, only on another thread, so nothing about durability changes.

Rows, not commits: a bulk enqueue writes hundreds of pages in one commit, and counted as one
it left the thread asleep while the log filled, so that SQLite's own checkpoint (below) found
all of it to copy, inside some writer's commit (an enqueue beside such writes waited 16 to
22 ms for one, measured).

A checkpoint beside a writer that never pauses never catches up with the last pages, and the
log starts over from its beginning only once one has; without a bound it grew to 2.6 GB in
60,000 enqueues (2026-12-06). Two bounds, then. SQLite's own checkpoint stays, moved out to
`BACKSTOP_PAGES`, and finds most pages already copied when it runs. But it cannot run while
this thread holds SQLite's checkpoint lock, which on a slow disk under steady writes is
nearly always (the log reached 68 MB in a CI run), so once a pass of the thread leaves a log
of `RESTART_PAGES` or more, the thread copies the last pages again with the process's writers
paused, and the next write starts the log over. (Doing that after every pass cost more than
it saved: 67 against 48 µs an enqueue, the writers waiting for the second sync.)
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

logger = logging.getLogger("activejob.store")

CHECKPOINT_EVERY = 200
"""Rows written between checkpoints: a single enqueue writes two (the job and its event) in
five pages, so a checkpoint every 100 of them, about 500 pages (2 MB), half of SQLite's own
interval; a bulk enqueue of a hundred jobs or more wakes the thread at once."""

BACKSTOP_PAGES = 4000
"""`wal_autocheckpoint` of the store's connections: SQLite checkpoints inside a commit only
once the log passes 16 MB (under a steady stream of writes, after a big bulk enqueue, or for
writers in processes that do not run this thread). 10,000 measured the same."""

RESTART_PAGES = BACKSTOP_PAGES // 2
"""When one of the thread's passes leaves a log at least this long, the log has not started
over for half the backstop: the thread copies its last pages again with the process's
writers paused, so that the next write starts it over."""


class WalCheckpointer:
    """Checkpoints the WAL of one SQLite file on a thread of its own.

    `wrote(rows)` after each commit on the store's connections (a counter: cheap); `close()`
    stops the thread and closes its connection. The thread starts at the first checkpoint due.
    """

    def __init__(self, path: str, settings: tuple[str, ...], write_lock: threading.Lock) -> None:
        self._path, self._settings, self._write_lock = path, settings, write_lock
        self._rows = 0
        self._due = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.checkpoints = 0  # how many have run (for tests and the curious)

    def wrote(self, rows: int) -> None:
        """Count the rows a commit wrote (under the store's write lock). Never raises: the
        commit is done, and its caller must not be told otherwise."""
        self._rows += rows
        if self._rows >= CHECKPOINT_EVERY and not self._closed:  # (a write racing dispose starts nothing)
            self._rows = 0
            if self._thread is None or self._pid != os.getpid():  # a fork keeps no threads
                try:
                    self._start()
                except RuntimeError as error:  # no thread to be had: SQLite's backstop checkpoints
                    logger.warning("could not start the WAL checkpoint thread of %s: %s", self._path, error)
                    self._thread = None
                    return
            self._due.set()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._due = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activejob-wal-checkpoints", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed = True
        self._due.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=0)
        try:
            for statement in self._settings:
                conn.execute(statement)
            while True:
                self._due.wait()
                self._due.clear()
                if self._closed:
                    return
                try:
                    self._checkpoint(conn)
                except sqlite3.Error as error:  # the writers' own backstop still holds
                    logger.warning("WAL checkpoint of %s failed: %s", self._path, error)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # PASSIVE: copies what it can without waiting for readers or writers.
        _busy, log, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if log >= RESTART_PAGES:
            # Writers kept the log from starting over, and while this thread holds SQLite's
            # checkpoint lock their own checkpoint (the backstop) cannot run either: copy the
            # last pages with this process's writers paused, so that the next one restarts it.
            with self._write_lock:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self.checkpoints += 1
