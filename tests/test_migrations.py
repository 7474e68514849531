"""The schema comes from the Alembic migrations shipped inside the package."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from runner_support import table_names
from sqlalchemy import create_engine

import activejob
from activejob import JobQueue, migrate
from activejob.dialects import normalize_url

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"activejob_jobs", "activejob_events", "activejob_workers", "activejob_paused_queues",
          "activejob_alembic_version"}



def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "activejob", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_db_upgrade_creates_the_tables(sqlite_url: str) -> None:
    result = _cli("db", "upgrade", "--database-url", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert table_names(sqlite_url) >= TABLES


def test_db_current_reports_the_revision(sqlite_url: str) -> None:
    _cli("db", "upgrade", "--database-url", sqlite_url)
    result = _cli("db", "current", "--database-url", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(migrate.head() or "?")


def test_configure_migrates_automatically(db_url: str) -> None:
    queue = activejob.configure(db_url)
    try:
        assert migrate.current(queue.store.engine) == migrate.head()
    finally:
        JobQueue.reset()


def test_auto_migrate_can_be_turned_off(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url, auto_migrate=False)
    try:
        _ = queue.store
        assert "activejob_jobs" not in table_names(sqlite_url)
    finally:
        JobQueue.reset()


def test_enqueueing_into_a_database_never_migrated_names_the_missing_table(sqlite_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from activejob import BaseJob, NoArgs, job

    @job("never_migrated", schema=NoArgs)
    class NeverMigrated(BaseJob[NoArgs]):
        def perform(self, args: NoArgs) -> None: ...

    activejob.configure(sqlite_url, auto_migrate=False)
    try:
        for enqueue in (NeverMigrated.perform_later, lambda: NeverMigrated.perform_all_later([{}, {}])):
            with pytest.raises(OperationalError, match="no such table: activejob_jobs"):
                enqueue()
    finally:
        JobQueue.reset()


def test_downgrade_to_base_and_back(sqlite_url: str) -> None:
    assert _cli("db", "upgrade", "--database-url", sqlite_url).returncode == 0
    result = _cli("db", "downgrade", "base", "--database-url", sqlite_url)
    assert result.returncode == 0, result.stderr
    assert not (TABLES - {"activejob_alembic_version"}) & table_names(sqlite_url)
    assert _cli("db", "upgrade", "--database-url", sqlite_url).returncode == 0
    assert table_names(sqlite_url) >= TABLES


def test_migrations_leave_the_applications_own_alembic_table_alone(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('app_rev_1')")
    activejob.configure(sqlite_url)
    JobQueue.reset()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "app_rev_1"
    engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_package_installs_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], capture_output=True, text=True,
                         timeout=540)
    assert pip.returncode == 0, pip.stderr[-2000:]
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import activejob, activejob.migrate as m; print(activejob.__version__, m.head())"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == [activejob.__version__, migrate.head()]


def _for_this_dialect(obj: object, conn: Any) -> bool:
    """Whether the models build `obj` on this connection's database (an index built on one
    dialect only says so with `ddl_if`)."""
    only = getattr(obj, "_ddl_if", None)
    return only is None or only.dialect is None or only.dialect == conn.dialect.name


def _other_dialects_indexes(conn: Any) -> list[str]:
    from sqlmodel import SQLModel

    return [str(index.name) for table in SQLModel.metadata.tables.values() for index in table.indexes
            if not _for_this_dialect(index, conn)]


def test_the_migrations_build_the_schema_the_models_describe(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    activejob.configure(db_url)
    JobQueue.reset()
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            # Only our tables: the application's (and other tests') share the metadata and the database.
            context = MigrationContext.configure(conn, opts={
                "include_name": lambda name, kind, _parent: kind != "table" or name.startswith("activejob_"),
                "include_object": lambda obj, name, kind, _reflected, _other: (
                    (kind != "table" or name.startswith("activejob_")) and _for_this_dialect(obj, conn)),
                "version_table": "activejob_alembic_version",
            })
            with warnings.catch_warnings():
                # Indexes for another dialect are left out (include_object), after Alembic
                # has warned that it cannot compare them.
                for index in _other_dialects_indexes(conn):
                    warnings.filterwarnings("ignore", message=f".*index '{index}'")
                diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    # Alembic cannot compare an index on an expression (`priority DESC`) read back from
    # SQLite, and reports it dropped and added again under the same name: not a difference.
    removed = {d[1].name for d in diff if d[0] == "remove_index"}
    added = {d[1].name for d in diff if d[0] == "add_index"}
    assert [d for d in diff if not (d[0] in ("remove_index", "add_index") and d[1].name in removed & added)] == []
