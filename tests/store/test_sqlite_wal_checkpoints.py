"""On SQLite, a thread of the store checkpoints the WAL beside the writers (once its commits
have written `CHECKPOINT_EVERY` rows), so no enqueue waits for a checkpoint's sync; SQLite's
own checkpoint stays as a backstop at `BACKSTOP_PAGES`, and the thread restarts a log that
writers never let start over. What a checkpoint has copied is read from the database file alone
(`immutable=1`: SQLite ignores the log)."""

from __future__ import annotations

import shutil
import sqlite3
import struct
import time
from pathlib import Path

import pytest

from activejob.store import Store
from activejob.store.checkpoints import BACKSTOP_PAGES, CHECKPOINT_EVERY

from .contract import NOW, Jobs

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's alone

ENQUEUES = CHECKPOINT_EVERY // 2
"""Single enqueues that wake the thread: each writes two rows, the job and its event."""


def path_of(store: Store) -> str:
    return store.url.removeprefix("sqlite:///")


def jobs_in_the_file_alone(store: Store, path: Path | None = None) -> int:
    """Jobs the database file holds without its log: what checkpoints have copied there."""
    conn = sqlite3.connect(f"file:{path or path_of(store)}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM activejob_jobs").fetchone()[0]
    finally:
        conn.close()


def restarts(store: Store) -> int:
    """How many times the log has started over from its beginning: the checkpoint sequence
    number in its header, which SQLite counts up at each restart (a log that never restarts
    only grows)."""
    with open(path_of(store) + "-wal", "rb") as log:
        return struct.unpack(">I", log.read(16)[12:16])[0]


def wait_for_checkpoints(store: Store, count: int) -> None:
    deadline = time.monotonic() + 10
    while store._checkpointer is None or store._checkpointer.checkpoints < count:
        assert time.monotonic() < deadline, "no checkpoint ran"
        time.sleep(0.01)


def test_enqueues_reach_the_database_file_without_a_checkpoint_in_their_commits(jobs: Jobs) -> None:
    for _ in range(ENQUEUES):
        jobs.add()
    # A hundred enqueues write about 500 pages: far below the point where SQLite would
    # checkpoint inside a commit, so only the store's thread can have copied them.
    assert ENQUEUES * 5 < BACKSTOP_PAGES
    wait_for_checkpoints(jobs.store, 1)
    assert jobs_in_the_file_alone(jobs.store) == ENQUEUES


def test_one_bulk_enqueue_of_enough_rows_wakes_the_thread(jobs: Jobs) -> None:
    jobs.add(ENQUEUES)  # one commit
    wait_for_checkpoints(jobs.store, 1)
    assert jobs_in_the_file_alone(jobs.store) == ENQUEUES


def test_fewer_rows_than_the_interval_stay_in_the_log(jobs: Jobs) -> None:
    for _ in range(ENQUEUES - 1):
        jobs.add()
    time.sleep(0.2)
    assert jobs_in_the_file_alone(jobs.store) == 0
    assert jobs.store._checkpointer is not None and jobs.store._checkpointer.checkpoints == 0


def test_the_log_starts_over_while_writes_never_pause(jobs: Jobs) -> None:
    jobs.add()
    for _ in range(6_000):  # about 30,000 pages through the log: a dozen restarts here
        jobs.add()
    assert restarts(jobs.store) >= 2
    with jobs.store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM activejob_jobs").scalar() == 6_001


def test_the_thread_alone_starts_the_log_over(jobs: Jobs) -> None:
    # As when the thread's own passes keep SQLite's checkpoint lock busy, so that the
    # writers' checkpoint (the backstop) never gets to run: the thread restarts the log itself.
    jobs.add()
    jobs.store._hot.connection.execute("PRAGMA wal_autocheckpoint=0")
    for _ in range(6_000):
        jobs.add()
    assert restarts(jobs.store) >= 2


def test_every_connection_of_the_store_checkpoints_only_at_the_backstop(jobs: Jobs) -> None:
    jobs.add()
    hot = jobs.store._hot.connection
    assert hot.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    with jobs.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES


def test_dispose_stops_the_checkpoint_thread(store: Store) -> None:
    jobs = Jobs(store)
    for _ in range(ENQUEUES):
        jobs.add()
    wait_for_checkpoints(store, 1)
    assert store._checkpointer is not None
    thread = store._checkpointer._thread
    assert thread is not None and thread.is_alive()
    store.dispose()
    assert not thread.is_alive()


def test_a_relative_path_is_checkpointed_after_the_working_directory_changes(
        db_url: str, tmp_path: Path, sqlite_template: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # (db_url: the module's parametrization; this test opens its own file by a relative path)
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    shutil.copy(sqlite_template, home / "jobs.db")
    monkeypatch.chdir(home)
    store = Store("sqlite:///jobs.db")
    try:
        jobs = Jobs(store)
        jobs.add()  # opens the write connection here
        monkeypatch.chdir(elsewhere)
        for _ in range(ENQUEUES - 1):
            jobs.add()
        wait_for_checkpoints(store, 1)
        assert jobs_in_the_file_alone(store, home / "jobs.db") == ENQUEUES
        assert not (elsewhere / "jobs.db").exists()
    finally:
        store.dispose()


def test_an_enqueue_succeeds_when_no_checkpoint_thread_can_start(jobs: Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs.add()
    checkpointer = jobs.store._checkpointer
    assert checkpointer is not None

    def refuse() -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(checkpointer, "_start", refuse)
    ids = [jobs.add()[0] for _ in range(ENQUEUES)]  # the last commit would start it
    assert len(set(ids)) == ENQUEUES
    assert checkpointer._thread is None


def test_rows_written_by_the_general_path_count_too(jobs: Jobs) -> None:
    ids = jobs.add(ENQUEUES // 2 + 1)  # one bulk commit: a little over half the rows
    assert jobs.store._checkpointer is not None and jobs.store._checkpointer.checkpoints == 0
    statuses, _ = jobs.store.cancel_many(ids, NOW)  # a transaction of the general path
    assert set(statuses.values()) == {"cancelled"}
    wait_for_checkpoints(jobs.store, 1)
    assert jobs_in_the_file_alone(jobs.store) == len(ids)


def test_a_closed_checkpointer_starts_no_thread(jobs: Jobs) -> None:
    jobs.add()
    checkpointer = jobs.store._checkpointer
    assert checkpointer is not None
    checkpointer.close()
    checkpointer.wrote(CHECKPOINT_EVERY)
    assert checkpointer._thread is None
