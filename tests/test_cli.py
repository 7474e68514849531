"""The `activejob` command for inspecting and controlling jobs."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, JobQueue, job

ROOT = Path(__file__).resolve().parents[1]


class Args(BaseModel):
    n: int


@job("cli_noop", schema=Args)
class Noop(BaseJob[Args]):
    def perform(self, args: Args) -> None: ...


@job("cli_fails", schema=Args, max_retries=0)
class Fails(BaseJob[Args]):
    def perform(self, args: Args) -> None:
        raise RuntimeError("nope")


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "activejob", *args, "--database-url", url],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture
def queue(sqlite_url: str) -> JobQueue:
    q = activejob.configure(sqlite_url)
    yield q  # type: ignore[misc]
    JobQueue.reset()


def test_jobs_lists_newest_first(queue: JobQueue, sqlite_url: str) -> None:
    a, b = Noop.perform_later(n=1), Noop.perform_later(n=2)
    out = _cli(sqlite_url, "jobs", "--json")
    assert out.returncode == 0, out.stderr
    assert [j["id"] for j in json.loads(out.stdout)] == [b.id, a.id]


def test_jobs_filters_by_status(queue: JobQueue, sqlite_url: str) -> None:
    Noop.perform_later(n=1)
    failed = Fails.perform_later(n=2)
    queue.run_until_idle()
    out = _cli(sqlite_url, "jobs", "--status", "failed")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and str(failed.id) in lines[0] and "failed" in lines[0]


def test_show_prints_the_job_and_its_events(queue: JobQueue, sqlite_url: str) -> None:
    handle = Fails.perform_later(n=1)
    queue.run_until_idle()
    shown = json.loads(_cli(sqlite_url, "show", str(handle.id)).stdout)
    assert shown["status"] == "failed" and shown["error"] == "RuntimeError: nope"
    assert [e["type"] for e in shown["events"]] == ["enqueued", "started", "failed"]


def test_show_an_unknown_job_fails_clearly(queue: JobQueue, sqlite_url: str) -> None:
    out = _cli(sqlite_url, "show", "4242")
    assert out.returncode != 0 and "no job with id 4242" in out.stderr


def test_cancel_retry_and_delete(queue: JobQueue, sqlite_url: str) -> None:
    pending = Noop.perform_later(n=1)
    assert _cli(sqlite_url, "cancel", str(pending.id)).stdout.strip() == "cancelled"
    assert "pending again" in _cli(sqlite_url, "retry", str(pending.id)).stdout
    assert queue.get_job(pending.id).status == "pending"  # type: ignore[union-attr]
    assert _cli(sqlite_url, "delete", str(pending.id)).returncode == 0
    assert queue.get_job(pending.id) is None


def test_cancel_of_an_unknown_job_fails_clearly(queue: JobQueue, sqlite_url: str) -> None:
    out = _cli(sqlite_url, "cancel", "999")
    assert out.returncode != 0 and "Error: no job with id 999" in out.stderr
    assert "Traceback" not in out.stderr


def test_retry_of_a_pending_job_is_refused(queue: JobQueue, sqlite_url: str) -> None:
    handle = Noop.perform_later(n=1)
    out = _cli(sqlite_url, "retry", str(handle.id))
    assert out.returncode != 0 and "only failed or cancelled" in out.stderr


def test_stats_prints_counts(queue: JobQueue, sqlite_url: str) -> None:
    Noop.perform_later(n=1)
    stats = json.loads(_cli(sqlite_url, "stats").stdout)
    assert stats["pending"] == 1 and stats["by_name"]["cli_noop"]["pending"] == 1


def test_types_lists_the_imported_job_types() -> None:
    out = subprocess.run([sys.executable, "-m", "activejob", "types", "--import", "tests.test_cli"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    names = {t["name"] for t in json.loads(out.stdout)}
    assert {"cli_noop", "cli_fails"} <= names


def test_an_unimportable_module_is_reported() -> None:
    out = subprocess.run([sys.executable, "-m", "activejob", "types", "--import", "no.such.module"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode != 0 and "cannot import 'no.such.module'" in out.stderr


def test_pause_queues_and_resume(queue: JobQueue, sqlite_url: str) -> None:
    Noop.set(queue="mail").perform_later(n=1)
    assert _cli(sqlite_url, "pause", "mail").stdout.strip() == "queue mail paused"
    assert _cli(sqlite_url, "pause", "mail").stdout.strip() == "queue mail was already paused"
    listed = json.loads(_cli(sqlite_url, "queues", "--json").stdout)
    assert listed["mail"]["paused"] is True and listed["mail"]["pending"] == 1
    assert "PAUSED" in _cli(sqlite_url, "queues").stdout
    assert _cli(sqlite_url, "resume", "mail").stdout.strip() == "queue mail resumed"
    assert queue.paused_queues() == []


def test_pause_refuses_an_empty_queue_name(queue: JobQueue, sqlite_url: str) -> None:
    done = _cli(sqlite_url, "pause", "")
    assert done.returncode != 0 and "a queue name is a non-empty string" in done.stderr


def _finish(argv: list[str], cwd: Path = ROOT, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `activejob ...`, which must end on its own within `timeout`; if it does not, it is
    killed along with any worker processes it started (they live in their own process group)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "activejob", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.kill()
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"activejob {' '.join(argv)} still running after {timeout}s:\n{err[-3000:]}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("processes", ["1", "3"])
@pytest.mark.parametrize("blank", ["", "   "])
def test_worker_refuses_an_empty_database_url(tmp_path: Path, blank: str, processes: str) -> None:
    done = _finish(["worker", "--database-url", blank, "--import", "tests.cluster_jobs", "--processes", processes],
                   cwd=tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"Error: database_url is empty ({blank!r})"), done.stderr
    assert "--database-url or ACTIVEJOB_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr and "supervising" not in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["jobs"], ["stats"], ["db", "upgrade"], ["db", "current"]])
def test_other_commands_refuse_an_empty_database_url(tmp_path: Path, command: list[str]) -> None:
    done = _finish([*command, "--database-url", ""], cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "Error: database_url is empty" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no activejob.db in the working directory instead"


def test_worker_with_an_unimportable_module_exits_with_ex_config(sqlite_url: str) -> None:
    done = _finish(["worker", "--database-url", sqlite_url, "--import", "nonexistent.module"], timeout=30)
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip() == "Error: cannot import 'nonexistent.module': No module named 'nonexistent'"


def test_a_module_that_fails_while_importing_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken_jobs.py").write_text("import os\n\nVALUE = os.environ['AJ_NOT_SET_ANYWHERE']\n")
    done = _finish(["worker", "--database-url", f"sqlite:///{tmp_path}/jobs.db", "--import", "broken_jobs"],
                   cwd=tmp_path, timeout=30)
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip() == (f"Error: cannot import 'broken_jobs': KeyError: 'AJ_NOT_SET_ANYWHERE' "
                                   f"({tmp_path / 'broken_jobs.py'}, line 3)")
