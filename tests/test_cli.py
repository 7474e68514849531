"""The `activejob` command for inspecting and controlling jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def test_cancel_of_a_finished_job_prints_its_status_and_exits_1(queue: JobQueue, sqlite_url: str) -> None:
    done = Noop.perform_later(n=1)
    queue.run_until_idle()
    cancelled = Noop.perform_later(n=2)
    queue.cancel(cancelled.id)
    for handle, status in ((done, "completed"), (cancelled, "cancelled")):
        out = _cli(sqlite_url, "cancel", str(handle.id))
        assert out.returncode == 1 and out.stdout.strip() == status, (out.stdout, out.stderr)
        assert out.stderr.strip() == f"Error: job {handle.id} had already finished ({status}): nothing was cancelled"
    assert queue.get_job(done.id).status == "completed"  # type: ignore[union-attr]


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
    from runner_support import run_bounded  # here: worker subprocesses import this module as job types

    done = run_bounded([sys.executable, "-m", "activejob", *argv], timeout, cwd=cwd)
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)


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


@pytest.mark.parametrize("processes", ["0", "-3"])
def test_worker_refuses_fewer_than_one_process(tmp_path: Path, processes: str) -> None:
    done = _finish(["worker", "--processes", processes, "--database-url", "sqlite:///jobs.db"], cwd=tmp_path,
                   timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '--processes' / '-p': {processes} is not in the range x>=1" in done.stderr
    assert list(tmp_path.iterdir()) == [], "no worker started"


@pytest.mark.parametrize("queues", ["", ",", " , "])
def test_worker_refuses_an_empty_queue_list(tmp_path: Path, queues: str) -> None:
    done = _finish(["worker", "--queues", queues, "--database-url", "sqlite:///jobs.db"], cwd=tmp_path, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"Invalid value for '--queues' / '-q': no queue named in {queues!r}" in done.stderr
    assert "'*' for every queue" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [], "no worker started on every queue"


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


# -- databases that cannot be used: one line, exit 1, for every command ----------------------

_EVERY_COMMAND = [["jobs"], ["stats"], ["show", "1"], ["workers"], ["queues"], ["prune"], ["cancel", "1"],
                  ["retry", "1"], ["delete", "1"], ["pause", "mail"], ["resume", "mail"], ["db", "current"],
                  ["db", "upgrade"], ["db", "downgrade", "base"], ["dashboard"], ["worker"],
                  ["enqueue", "cl_record", '{"n": 1, "log": "runs.log"}', "--import", "tests.cluster_jobs"]]


def _one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    from runner_support import one_line_error  # here: workers import this module as their jobs'

    one_line_error(done, *words)


@pytest.mark.parametrize("command", _EVERY_COMMAND, ids=" ".join)
def test_an_unsupported_database_scheme_is_one_line(tmp_path: Path, command: list[str]) -> None:
    done = _finish([*command, "--database-url", "mysql://app@db.internal/app"], cwd=tmp_path, timeout=30)
    _one_line_error(done, "unsupported database 'mysql'", "SQLite", "PostgreSQL")


@pytest.mark.parametrize("command", _EVERY_COMMAND, ids=" ".join)
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _finish([*command, "--database-url", f"postgresql://postgres@127.0.0.1:{port}/test"],
                   cwd=tmp_path, timeout=60)
    _one_line_error(done, "cannot use the database", "Connection refused")


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["jobs"], ["db", "upgrade"], ["worker", "--processes", "2"]], ids=" ".join)
def test_a_postgres_database_that_does_not_exist_is_one_line(pg_url: str, tmp_path: Path,
                                                               command: list[str]) -> None:
    missing = pg_url.rsplit("/", 1)[0] + "/activejob_no_such_database"
    done = _finish([*command, "--database-url", missing], cwd=tmp_path, timeout=60)
    _one_line_error(done, "cannot use the database", '"activejob_no_such_database" does not exist')


# -- a SQLite file that does not exist is not created behind the user's back ---------------------

_CREATE_SQLITE = (["worker"], ["db", "upgrade"], ["dashboard"])  # the long-running ones, and the migration


@pytest.mark.parametrize("command", [c for c in _EVERY_COMMAND if c not in _CREATE_SQLITE], ids=" ".join)
def test_a_missing_sqlite_file_is_reported_not_created(tmp_path: Path, command: list[str]) -> None:
    done = _finish([*command, "--database-url", "sqlite:///nope.db"], cwd=tmp_path, timeout=30)
    _one_line_error(done, f"no SQLite database at {tmp_path / 'nope.db'}")
    assert list(tmp_path.iterdir()) == []


def test_the_default_sqlite_file_is_not_created_by_a_read(tmp_path: Path) -> None:
    done = _finish(["jobs"], cwd=tmp_path, timeout=30)
    _one_line_error(done, f"no SQLite database at {tmp_path / 'activejob.db'}")
    assert list(tmp_path.iterdir()) == []


def test_db_upgrade_creates_a_missing_sqlite_file(tmp_path: Path) -> None:
    done = _finish(["db", "upgrade", "--database-url", "sqlite:///new.db"], cwd=tmp_path, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("database at revision"), done.stderr
    assert (tmp_path / "new.db").exists()
    listed = _finish(["jobs", "--json", "--database-url", "sqlite:///new.db"], cwd=tmp_path, timeout=30)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


def _wait_for(stream: Any, needle: str, seen: list[str]) -> str:
    """Lines of `stream` until one holds `needle` (the test's timeout bounds the wait)."""
    for line in stream:
        seen.append(line)
        if needle in line:
            return str(line)
    pytest.fail(f"{needle!r} never came:\n{''.join(seen)}")


def test_a_worker_creates_a_missing_sqlite_file_and_warns_it_can_run_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("ACTIVEJOB_DATABASE_URL", None)
    env.pop("ACTIVEJOB_IMPORT", None)
    proc = subprocess.Popen([sys.executable, "-m", "activejob", "worker", "--database-url", "sqlite:///w.db"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        line = _wait_for(proc.stderr, "no job types are registered", seen)
        assert "WARNING" in line and "can run nothing until job modules are imported" in line
        assert "--import" in line
        assert (tmp_path / "w.db").exists()
        _wait_for(proc.stderr, " started: ", seen)  # it runs (signals handled from here on)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_worker_with_job_types_does_not_warn(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "activejob", "-v", "worker", "--database-url",
                             f"sqlite:///{tmp_path}/w.db", "--import", "tests.cluster_jobs"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    try:
        assert "cl_record" in _wait_for(proc.stderr, " started: ", seen)  # its start-up line names its types
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    assert "no job types are registered" not in "".join(seen) + rest


# -- workers ---------------------------------------------------------------------------------

def test_workers_lists_a_live_worker(sqlite_url: str) -> None:
    JobQueue(sqlite_url).store.dispose()  # the schema, so the listing can start at once
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "activejob", "worker", "--database-url", sqlite_url,
                             "--import", "tests.cluster_jobs", "--queues", "mail,default", "-c", "3"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not listed and time.monotonic() < deadline:
            time.sleep(0.2)
            listed = json.loads(_cli(sqlite_url, "workers", "--json").stdout)
        assert len(listed) == 1, "the worker never showed up"
        assert listed[0]["pid"] == proc.pid and listed[0]["concurrency"] == 3
        assert listed[0]["queues"] == ["mail", "default"] and "cl_record" in listed[0]["job_types"]
        assert json.loads(_cli(sqlite_url, "workers").stdout)[0]["pid"] == proc.pid  # piped: JSON, as before
        table = _cli(sqlite_url, "workers", "--table").stdout.splitlines()
        assert table[0].split()[:4] == ["worker", "host", "pid", "concurrency"]
        assert str(proc.pid) in table[1] and "mail,default" in table[1] and "cl_record" in table[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert _cli(sqlite_url, "workers", "--table").stdout.strip() == "no live workers"
    assert json.loads(_cli(sqlite_url, "workers", "--json").stdout) == []


# -- the dashboard's refusals ------------------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "dashboard.example.com"])
def test_the_dashboard_refuses_to_serve_beyond_loopback_without_protection(tmp_path: Path, host: str) -> None:
    env_token = os.environ.pop("ACTIVEJOB_DASHBOARD_TOKEN", None)
    try:
        done = _finish(["dashboard", "--host", host, "--port", "0", "--database-url", "sqlite:///none.db"],
                       cwd=tmp_path, timeout=30)
    finally:
        if env_token is not None:
            os.environ["ACTIVEJOB_DASHBOARD_TOKEN"] = env_token
    _one_line_error(done, f"refusing to serve the dashboard on {host} without protection", "--token",
                    "--authorize")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("spec", "says"), [("nomodule", "use module:function"),
                                            ("no_such_module_xyz:check", "cannot load 'no_such_module_xyz:check'"),
                                            ("os:sep", "'os:sep' is not callable")])
def test_the_dashboard_refuses_a_bad_authorize_hook(tmp_path: Path, spec: str, says: str) -> None:
    done = _finish(["dashboard", "--host", "0.0.0.0", "--authorize", spec, "--database-url", "sqlite:///none.db"],
                   cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "Invalid value for --authorize" in done.stderr and says in done.stderr, \
        done.stderr
    assert "Traceback" not in done.stderr


def test_the_dashboard_with_a_token_gets_past_the_refusal(tmp_path: Path) -> None:
    # Beyond loopback with a token: no refusal; here it stops at the database instead of
    # serving, which shows the check came after the refusal's.
    done = _finish(["dashboard", "--host", "0.0.0.0", "--token", "s3cret", "--database-url", "mysql://a@b/c"],
                   cwd=tmp_path, timeout=30)
    _one_line_error(done, "unsupported database 'mysql'")


# -- the Makefile's shared venv step -----------------------------------------------------------

_FAKE_PYTHON = """#!/bin/sh
# Stands in for python3 -m venv DIR: a venv whose pip logs each install (slowly, as pip is).
dir="$3"
mkdir -p "$dir/bin"
cat > "$dir/bin/pip" <<'PIP'
#!/bin/sh
echo "pip $* $$" >> "$(dirname "$0")/../../pip.log"
sleep 1
PIP
printf '#!/bin/sh\\ntrue\\n' > "$dir/bin/ruff"
printf '#!/bin/sh\\ntrue\\n' > "$dir/bin/mypy"
chmod +x "$dir/bin/pip" "$dir/bin/ruff" "$dir/bin/mypy"
"""


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("flock") is None, reason="needs make and flock")
def test_two_make_targets_at_once_on_a_fresh_clone_install_the_venv_once(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    fake = tmp_path / "fake-python"
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    runs = [subprocess.Popen(["make", "-s", target, f"PY={fake}"], cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for target in ("lint", "typecheck")]
    outputs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    installs = (tmp_path / "pip.log").read_text().splitlines()
    assert len(installs) == 2, installs  # pip upgrade + the project, once: the second make waited
    assert (tmp_path / ".venv" / ".installed").exists()
