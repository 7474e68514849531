"""The read commands of `activejob`: tables for people, --json for scripts, and live views
(`jobs --watch`, `show --follow`)."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job

ROOT = Path(__file__).resolve().parents[1]


class Args(BaseModel):
    n: int


@job("reads_noop", schema=Args)
class Noop(BaseJob[Args]):
    def perform(self, args: Args) -> None: ...


@job("reads_fails", schema=Args, max_retries=0)
class Fails(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        raise RuntimeError("nope")


@pytest.fixture
def queue(sqlite_url: str) -> Iterator[JobQueue]:
    q = activejob.configure(sqlite_url)
    yield q
    JobQueue.reset()


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    return env


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "activejob", *args, "--database-url", url],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120)


def _start(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "activejob", *args, "--database-url", url], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _on_terminal(url: str, *args: str) -> str:
    """The command's output when stdout is a terminal, as a person running it sees it."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "activejob", *args, "--database-url", url], cwd=ROOT,
                            env=_env(), stdout=follower, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode().replace("\r\n", "\n")


def _line(stream: IO[str] | None, needle: str, seen: list[str]) -> str:
    assert stream is not None
    for line in stream:
        seen.append(line)
        if needle in line:
            return line
    pytest.fail(f"{needle!r} never came:\n{''.join(seen)}")


# -- jobs --status ---------------------------------------------------------------------------

def test_jobs_refuses_an_unknown_status_and_names_the_valid_ones(queue: JobQueue, sqlite_url: str) -> None:
    out = _cli(sqlite_url, "jobs", "--status", "faild")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert ("status must be one of pending, running, waiting, completed, failed, cancelled; got 'faild'"
            in out.stderr), out.stderr


def test_jobs_takes_several_statuses(queue: JobQueue, sqlite_url: str) -> None:
    pending = Noop.perform_later(n=1)
    failed = Fails.perform_later(n=2)
    queue.run_until_idle()
    cancelled = Noop.perform_later(n=3)
    queue.cancel(cancelled.id)
    for argv in (["--status", "failed,cancelled"], ["--status", "failed", "--status", "cancelled"],
                 ["--status", " failed , cancelled,"]):
        out = _cli(sqlite_url, "jobs", "--json", *argv)
        assert out.returncode == 0, out.stderr
        assert sorted(j["id"] for j in json.loads(out.stdout)) == sorted([failed.id, cancelled.id]), argv
    assert pending.id not in [j["id"] for j in json.loads(_cli(sqlite_url, "jobs", "--json", "--status",
                                                                "failed,cancelled").stdout)]
    wrong = _cli(sqlite_url, "jobs", "--status", "failed,bogus")
    assert wrong.returncode == 2 and "got 'bogus'" in wrong.stderr


# -- a table for people and --json for scripts, on every read command -------------------------

def test_stats_has_a_table_and_json(queue: JobQueue, sqlite_url: str) -> None:
    Noop.set(queue="mail").perform_later(n=1)
    queue.pause_queue("mail")
    piped = _cli(sqlite_url, "stats")
    assert json.loads(piped.stdout)["pending"] == 1  # piped: JSON, as it always was
    assert json.loads(_cli(sqlite_url, "stats", "--json").stdout) == json.loads(piped.stdout)
    table = _cli(sqlite_url, "stats", "--table").stdout
    assert _on_terminal(sqlite_url, "stats") == table
    lines = table.splitlines()
    assert lines[0].split() == ["status", "pending", "running", "waiting", "completed", "failed", "cancelled"]
    assert lines[1].split() == ["all", "1", "0", "0", "0", "0", "0"]
    assert any(line.split()[:2] == ["reads_noop", "1"] for line in lines)
    assert any(line.split()[:2] == ["mail", "1"] for line in lines)
    assert "paused queues: mail" in table and "due jobs no live worker can run: reads_noop (1)" in table


def test_show_has_a_table_and_json(queue: JobQueue, sqlite_url: str) -> None:
    handle = Fails.perform_later(n=7)
    queue.run_until_idle()
    assert json.loads(_cli(sqlite_url, "show", str(handle.id), "--json").stdout)["status"] == "failed"
    table = _cli(sqlite_url, "show", str(handle.id), "--table").stdout
    assert _on_terminal(sqlite_url, "show", str(handle.id)) == table
    assert any(line.split() == ["status", "failed"] for line in table.splitlines())
    assert "RuntimeError: nope" in table and 'args    {"n": 7}' in table
    _, events_part, traceback_part = table.split("\n\n", 2)
    events = events_part.splitlines()
    assert events[0].split() == ["event", "at", "type", "status", "attempt", "data"]
    assert [line.split()[3] for line in events[1:]] == ["enqueued", "started", "failed"]
    assert "Traceback" not in events_part  # the events' data leaves it out: it follows, once
    assert traceback_part.startswith("Traceback (most recent call last):") and "RuntimeError: nope" in traceback_part


def test_types_has_a_table_and_json() -> None:
    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "activejob", "types", "--import", "tests.test_cli_reads", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert {t["name"] for t in json.loads(run("--json"))} == {"reads_noop", "reads_fails"}
    table = run("--table").splitlines()
    assert table[0].split()[:4] == ["name", "queue", "priority", "max_retries"]
    assert sorted(line.split()[0] for line in table[1:]) == ["reads_fails", "reads_noop"]
    assert run("--table", "--import", "") != ""  # an empty --import adds nothing, still a table


def test_jobs_and_queues_keep_their_table_and_have_json(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.set(queue="mail").perform_later(n=1)
    assert _cli(sqlite_url, "jobs").stdout == _cli(sqlite_url, "jobs", "--table").stdout
    assert str(handle.id) in _cli(sqlite_url, "jobs").stdout
    assert json.loads(_cli(sqlite_url, "jobs", "--json").stdout)[0]["id"] == handle.id
    assert "mail" in _cli(sqlite_url, "queues", "--table").stdout
    assert json.loads(_cli(sqlite_url, "queues", "--json").stdout)["mail"]["pending"] == 1


def test_json_and_table_together_are_refused(queue: JobQueue, sqlite_url: str) -> None:
    out = _cli(sqlite_url, "stats", "--json", "--table")
    assert out.returncode == 2 and "--json and --table: pick one" in out.stderr


# -- live views --------------------------------------------------------------------------------

def test_jobs_watch_refreshes_until_ctrl_c(queue: JobQueue, sqlite_url: str) -> None:
    first = Noop.perform_later(n=1)
    proc = _start(sqlite_url, "jobs", "--watch", "0.2")
    seen: list[str] = []
    try:
        _line(proc.stdout, "(Ctrl-C stops)", seen)
        _line(proc.stdout, f"{first.id}  pending", seen)
        second = Noop.perform_later(n=2)
        _line(proc.stdout, f"{second.id}  pending", seen)  # a later refresh shows the new job
        assert sum("(Ctrl-C stops)" in line for line in seen) >= 2
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err


def test_jobs_watch_json_prints_one_list_a_line(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.perform_later(n=1)
    proc = _start(sqlite_url, "jobs", "--watch", "0.1", "--json")
    seen: list[str] = []
    try:
        for _ in range(2):
            line = _line(proc.stdout, "[", seen)
            assert [j["id"] for j in json.loads(line)] == [handle.id]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize(("job_type", "status", "code"), [(Noop, "completed", 0), (Fails, "failed", 1)])
def test_show_follow_prints_events_as_they_come_and_exits_by_outcome(
        queue: JobQueue, sqlite_url: str, job_type: type[Noop], status: str, code: int) -> None:
    handle = job_type.perform_later(n=1)
    proc = _start(sqlite_url, "show", str(handle.id), "--follow", "--table", "--interval", "0.1")
    seen: list[str] = []
    try:
        _line(proc.stdout, "enqueued", seen)  # the past first
        time.sleep(0.3)
        queue.run_until_idle()  # then what happens while it watches
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    lines = (("".join(seen)) + out).splitlines()
    assert [line.split()[3] for line in lines[:-1]] == ["enqueued", "started", status]
    assert lines[-1].startswith(f"job {handle.id} {status}")


def test_show_follow_json_and_cancel(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.perform_later(n=1)
    proc = _start(sqlite_url, "show", str(handle.id), "--follow", "--json", "--interval", "0.1")
    seen: list[str] = []
    try:
        _line(proc.stdout, '"enqueued"', seen)
        queue.cancel(handle.id)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    documents = [json.loads(line) for line in ("".join(seen) + out).splitlines()]
    assert [d["type"] for d in documents[:-1]] == ["enqueued", "cancelled"]
    assert documents[-1]["id"] == handle.id and documents[-1]["status"] == "cancelled"


def test_show_follow_of_a_finished_job_exits_at_once(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.perform_later(n=1)
    queue.run_until_idle()
    out = _cli(sqlite_url, "show", str(handle.id), "--follow", "--table")
    assert out.returncode == 0 and out.stdout.splitlines()[-1] == f"job {handle.id} completed"


def test_show_follow_stops_on_ctrl_c(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.perform_later(n=1)
    proc = _start(sqlite_url, "show", str(handle.id), "--follow", "--interval", "0.1")
    seen: list[str] = []
    _line(proc.stdout, "enqueued", seen)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
