"""The schema and the `activejob` command: only `db upgrade`, and `worker` and `dashboard` while
auto-migrate is on, create or upgrade activejob's tables; every other command refuses a
database without them (or behind the newest migration) with one line, and leaves it as it is.
And `db upgrade` / `db downgrade` with a revision that does not exist: one line too."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_support import one_line_error, table_names
from sqlalchemy import create_engine, text

from activejob import migrate
from activejob.cli.schema import revisions
from activejob.dialects import normalize_url

ROOT = Path(__file__).resolve().parents[1]


def _finish(argv: list[str], cwd: Path = ROOT, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run `activejob ...`, which must end on its own within `timeout` (see test_cli._finish)."""
    from runner_support import run_bounded

    done = run_bounded([sys.executable, "-m", "activejob", *argv], timeout, cwd=cwd)
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)




def _make_users_table(url: str) -> None:
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def other_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An application's own database, with a `users` table and nothing of activejob's: a new
    SQLite file, or a new PostgreSQL database on the session's server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/other.db"
        _make_users_table(url)
        yield url
        return
    server: str = request.getfixturevalue("pg_server_url")
    name = f"activejob_other_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        _make_users_table(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Every command that only reads or changes what is there.
_READ_AND_CHANGE = [["jobs"], ["stats"], ["show", "1"], ["explain", "1"], ["workers"], ["queues"], ["batches"],
                    ["batch", "1"], ["cron"], ["prune"], ["cancel", "1"], ["retry", "1"], ["delete", "1"],
                    ["cancel-batch", "1"], ["pause", "mail"], ["resume", "mail"]]


def test_read_and_change_commands_refuse_a_database_without_activejob_tables(other_url: str, tmp_path: Path) -> None:
    # Every command on one database (made once: on PostgreSQL that is most of the cost).
    for command in _READ_AND_CHANGE:
        done = _finish([*command, "--database-url", other_url], cwd=tmp_path, timeout=60)
        one_line_error(done, "no activejob tables in", "run `activejob db upgrade` first", "does not migrate")
        assert table_names(other_url) == {"users"}, f"{' '.join(command)} created activejob's tables"


@pytest.mark.parametrize("command", [["stats"], ["jobs"], ["pause", "mail"]], ids=" ".join)
def test_read_and_change_commands_refuse_a_database_behind_the_newest_migration(other_url: str, tmp_path: Path,
                                                                                command: list[str]) -> None:
    older = revisions()[-2]
    upgraded = _finish(["db", "upgrade", older, "--database-url", other_url], cwd=tmp_path)
    assert upgraded.returncode == 0 and upgraded.stdout.strip() == f"database at revision {older}", upgraded.stderr
    done = _finish([*command, "--database-url", other_url], cwd=tmp_path)
    one_line_error(done, f"at activejob's migration {older}, behind the newest, {migrate.head()}",
                    "run `activejob db upgrade` first")
    current = _finish(["db", "current", "--database-url", other_url], cwd=tmp_path)
    assert current.stdout.startswith(f"{older} "), "the command upgraded the database"


@pytest.mark.parametrize("command", [["worker"], ["worker", "--processes", "2"], ["dashboard", "--port", "0"]],
                         ids=" ".join)
def test_worker_and_dashboard_do_not_migrate_with_activejob_auto_migrate_false(
        other_url: str, tmp_path: Path, command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if command[0] == "dashboard":
        pytest.importorskip("uvicorn")
    monkeypatch.setenv("ACTIVEJOB_AUTO_MIGRATE", "false")
    done = _finish([*command, "--database-url", other_url], cwd=tmp_path, timeout=60)
    one_line_error(done, "no activejob tables in", "run `activejob db upgrade` first", "auto-migrate is off")
    assert table_names(other_url) == {"users"}


def test_no_auto_migrate_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    done = _finish(["worker", "--no-auto-migrate", "--database-url", "sqlite:///new.db"], cwd=tmp_path, timeout=30)
    one_line_error(done, f"no SQLite database at {tmp_path / 'new.db'}")
    assert list(tmp_path.iterdir()) == []


def test_a_worker_keeps_auto_migrate_false_of_the_imported_modules(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/other.db"
    _make_users_table(url)
    (tmp_path / "app_jobs.py").write_text(f"import activejob\n\nactivejob.configure({url!r}, auto_migrate=False)\n")
    done = _finish(["worker", "--import", "app_jobs", "--database-url", url], cwd=tmp_path, timeout=60)
    one_line_error(done, "no activejob tables in", "auto-migrate is off")
    assert table_names(url) == {"users"}


# -- db upgrade [REVISION], db downgrade REVISION ------------------------------------------------

def test_db_upgrade_takes_the_revision_as_an_argument_or_an_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    first, second = revisions()[1], revisions()[3]
    for argv, at in ((["db", "upgrade", first], first), (["db", "upgrade", "--revision", second], second),
                     (["db", "upgrade"], migrate.head())):
        done = _finish([*argv, "--database-url", url], cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"database at revision {at}", (argv, done.stderr)
    both = _finish(["db", "upgrade", first, "--revision", second, "--database-url", url], cwd=tmp_path)
    assert both.returncode == 2 and "give one" in both.stderr, both.stderr


@pytest.mark.parametrize("command", [["db", "downgrade", "nosuch"], ["db", "upgrade", "nosuch"],
                                     ["db", "upgrade", "--revision", "nosuch"]], ids=" ".join)
def test_an_unknown_migration_is_one_line_naming_the_known_ones(db_url: str, tmp_path: Path,
                                                                command: list[str]) -> None:
    assert _finish(["db", "upgrade", "--database-url", db_url], cwd=tmp_path).returncode == 0
    done = _finish([*command, "--database-url", db_url], cwd=tmp_path)
    line = one_line_error(done, "no migration 'nosuch'; known: " + ", ".join(revisions()))
    assert revisions()[0] == "0001" and migrate.head() in line
    assert _finish(["db", "current", "--database-url", db_url], cwd=tmp_path).stdout.startswith(f"{migrate.head()} ")


def test_a_downgrade_target_above_the_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/jobs.db"
    assert _finish(["db", "upgrade", revisions()[1], "--database-url", url], cwd=tmp_path).returncode == 0
    done = _finish(["db", "downgrade", migrate.head() or "", "--database-url", url], cwd=tmp_path)
    one_line_error(done, f"cannot migrate to '{migrate.head()}'", "not a valid downgrade target")
