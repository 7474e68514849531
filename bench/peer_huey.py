"""The no-op job as a huey task, on huey's own SQLite or PostgreSQL storage.

`SqliteHuey` is used as huey ships it (WAL, and SQLite's own `synchronous`, which is FULL:
huey sets it only when given `fsync`), and, as a second variant, with `synchronous=NORMAL`
as activejob sets it by default (a 5-line subclass of huey's storage, since huey's `fsync`
option offers only OFF or FULL), so each activejob durability level has its huey twin.

The benchmark process calls `make()`; the consumer process loads `bench.peer_huey.huey`,
built from BENCH_HUEY_KIND / BENCH_HUEY_TARGET (and BENCH_HUEY_SYNCHRONOUS=NORMAL for the
variant). huey deletes a task's row when a worker
takes it and keeps no record of when it ran, so the consumer also gets two signal handlers
(BENCH_MARKS_FILE, BENCH_MARKS_JOBS): the first SIGNAL_EXECUTING and the SIGNAL_COMPLETE of
the last of the expected jobs are written to a file once all of them have completed (and
any SIGNAL_ERROR to a file beside it, which fails the measurement).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from huey import PostgresHuey, SqliteHuey, signals
from huey.storage import SqliteStorage


class NormalSyncSqliteStorage(SqliteStorage):
    """huey's SQLite storage with `synchronous=NORMAL`, as activejob sets it (huey's `fsync`
    option offers only OFF or FULL). Everything else is huey's: WAL, its SQL, its locking."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn


def make(kind: str, target: str, synchronous: str | None = None) -> tuple[Any, Any]:
    """A huey instance on `target` (a file for "sqlite", a libpq DSN for "postgres") and its task.
    `synchronous`: None for huey's default SQLite storage, "NORMAL" for the variant."""
    if kind == "sqlite" and synchronous is None:
        huey = SqliteHuey("bench", filename=target)
    elif kind == "sqlite" and synchronous == "NORMAL":
        huey = SqliteHuey("bench", filename=target, storage_class=NormalSyncSqliteStorage)
    elif kind == "sqlite":
        raise ValueError(f"synchronous must be None or 'NORMAL', got {synchronous!r}")
    else:
        huey = PostgresHuey("bench", dsn=target)

    @huey.task(name="bench_noop")
    def noop() -> None:
        return None

    return huey, noop


def _install_marks(huey: Any, path: Path, expected: int) -> None:
    lock = threading.Lock()
    state: dict[str, Any] = {"first": None, "done": 0}

    @huey.signal(signals.SIGNAL_EXECUTING)
    def executing(signal: str, task: Any) -> None:
        if state["first"] is None:
            now = time.time()
            with lock:
                if state["first"] is None:
                    state["first"] = now

    @huey.signal(signals.SIGNAL_ERROR)
    def error(signal: str, task: Any, exc: BaseException | None = None, *args: Any) -> None:
        with lock, path.with_suffix(".errors").open("a") as out:
            out.write(f"{task}: {exc!r}\n")

    @huey.signal(signals.SIGNAL_COMPLETE)
    def complete(signal: str, task: Any, *args: Any) -> None:
        now = time.time()
        with lock:
            state["done"] += 1
            if state["done"] != expected:
                return
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"first_started": state["first"], "last_finished": now, "jobs": expected}))
        tmp.replace(path)


if "BENCH_HUEY_KIND" in os.environ:
    huey, noop = make(os.environ["BENCH_HUEY_KIND"], os.environ["BENCH_HUEY_TARGET"],
                      os.environ.get("BENCH_HUEY_SYNCHRONOUS") or None)
    if "BENCH_MARKS_FILE" in os.environ:
        _install_marks(huey, Path(os.environ["BENCH_MARKS_FILE"]), int(os.environ["BENCH_MARKS_JOBS"]))
