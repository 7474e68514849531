"""The batch commands of `activejob`: `batches` (list), `batch ID` (counts, members, events;
--follow until it finishes) and `cancel-batch ID`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, Batch, JobQueue, job

ROOT = Path(__file__).resolve().parents[1]


class Args(BaseModel):
    n: int


@job("cli_batch_row", schema=Args, max_retries=0)
class Row(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        if args.n < 0:
            raise ValueError("a negative row")
        return args.n


@pytest.fixture
def queue(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url)
    yield q
    JobQueue.reset()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ACTIVEJOB_DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "activejob", *args, "--database-url", url],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_batches_lists_each_batch_with_its_state_and_counts(queue: JobQueue, sqlite_url: str) -> None:
    with Batch(description="done rows"):
        Row.perform_all_later([{"n": 1}, {"n": 2}])
    queue.run_until_idle()
    with Batch(description="open rows"):
        Row.perform_later(n=3)
    out = _cli(sqlite_url, "batches")
    assert out.returncode == 0, out.stderr
    header, newer, older = out.stdout.splitlines()
    assert header.split()[:4] == ["batch", "state", "progress", "total"]
    assert newer.split()[1] == "running" and newer.endswith("open rows")
    assert older.split()[1:4] == ["completed", "100%", "2"] and older.endswith("done rows")
    unfinished = json.loads(_cli(sqlite_url, "batches", "--unfinished", "--json").stdout)
    assert [b["description"] for b in unfinished] == ["open rows"]


def test_batch_shows_counts_members_and_the_batch_events(queue: JobQueue, sqlite_url: str) -> None:
    with Batch(description="mixed") as batch:
        Row.perform_all_later([{"n": 1}, {"n": -1}])
    queue.run_until_idle()
    out = _cli(sqlite_url, "batch", str(batch.id))
    assert out.returncode == 0, out.stderr
    assert f"batch {batch.id}  failed" in out.stdout
    assert "completed=1 failed=1" in out.stdout
    assert "batch_failed" in out.stdout and "batch_finished" in out.stdout
    as_json = json.loads(_cli(sqlite_url, "batch", str(batch.id), "--json").stdout)
    assert (as_json["total"], len(as_json["members"])) == (2, 2)
    assert [e["type"] for e in as_json["events"] if e["job_id"] is None] == ["batch_failed", "batch_finished"]


def test_batch_follow_of_a_finished_batch_exits_by_its_outcome(queue: JobQueue, sqlite_url: str) -> None:
    with Batch() as good:
        Row.perform_later(n=1)
    with Batch() as bad:
        Row.perform_later(n=-1)
    queue.run_until_idle()
    ok = _cli(sqlite_url, "batch", str(good.id), "--follow")
    assert ok.returncode == 0 and f"batch {good.id} completed" in ok.stdout
    failed = _cli(sqlite_url, "batch", str(bad.id), "--follow")
    assert failed.returncode == 1 and f"batch {bad.id} failed" in failed.stdout


def test_an_unknown_batch_fails_clearly(queue: JobQueue, sqlite_url: str) -> None:
    out = _cli(sqlite_url, "batch", "999")
    assert out.returncode == 1 and "no batch with id 999" in out.stderr
    cancelled = _cli(sqlite_url, "cancel-batch", "999")
    assert cancelled.returncode == 1 and "no batch with id 999" in cancelled.stderr


def test_cancel_batch_cancels_the_unfinished_members(queue: JobQueue, sqlite_url: str) -> None:
    with Batch() as batch:
        Row.perform_all_later([{"n": 1}, {"n": 2}])
    out = _cli(sqlite_url, "cancel-batch", str(batch.id))
    assert out.returncode == 0, out.stderr
    assert "2 member(s) cancelled" in out.stdout
    info = queue.get_batch(batch.id)  # type: ignore[arg-type]
    assert info is not None and (info.cancelled, info.finished) == (2, True)


def test_cancel_batch_of_a_finished_batch_cancels_nothing_and_exits_1(queue: JobQueue, sqlite_url: str) -> None:
    with Batch() as done:
        Row.perform_all_later([{"n": 1}, {"n": 2}])
    queue.run_until_idle()
    with Batch() as cancelled:
        Row.perform_later(n=3)
    queue.cancel_batch(cancelled.id)  # type: ignore[arg-type]
    for batch, state in ((done, "completed"), (cancelled, "cancelled")):
        out = _cli(sqlite_url, "cancel-batch", str(batch.id))
        assert out.returncode == 1 and out.stdout == "", (out.stdout, out.stderr)
        assert out.stderr.strip() == f"Error: batch {batch.id} had already finished ({state}): nothing was cancelled"
    info = queue.get_batch(done.id)  # type: ignore[arg-type]
    assert info is not None and (info.completed, info.cancelled, info.cancelled_at) == (2, 0, None)


def test_a_repeated_cancel_batch_reports_only_what_it_cancelled(queue: JobQueue, sqlite_url: str) -> None:
    with Batch() as batch:  # still open: cancelled, it is not finished until its block ends
        Row.perform_all_later([{"n": 1}, {"n": 2}])
        first = _cli(sqlite_url, "cancel-batch", str(batch.id))
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip() == f"batch {batch.id} cancelled: 2 member(s) cancelled, 0 still stopping"
        again = _cli(sqlite_url, "cancel-batch", str(batch.id))
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == (f"batch {batch.id} was cancelled already: nothing more was cancelled, "
                                        "0 member(s) still stopping")


def test_batch_follow_prints_events_as_they_come_until_the_batch_finishes(queue: JobQueue, sqlite_url: str) -> None:
    with Batch() as batch:
        Row.perform_all_later([{"n": 1}, {"n": 2}])
    env = {k: v for k, v in os.environ.items() if k != "ACTIVEJOB_DATABASE_URL"}
    follow = subprocess.Popen([sys.executable, "-m", "activejob", "batch", str(batch.id), "--follow", "--interval",
                               "0.1", "--database-url", sqlite_url], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()  # the members' enqueued events, already in the log
        assert "enqueued" in first
        queue.run_until_idle()
        out, err = follow.communicate(timeout=30)
    finally:
        follow.kill()
    assert follow.returncode == 0, err
    assert "started" in out and "completed" in out and "batch_finished" in out
    assert out.rstrip().endswith(f"batch {batch.id} completed: 2 completed, 0 failed, 0 cancelled")
