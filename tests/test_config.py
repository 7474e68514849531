"""Settings: an empty database URL is a mistake to report, not an in-memory database to use."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import activejob
from activejob import ConfigurationError, JobQueue
from activejob.config import ENV_URL, Settings


@pytest.fixture(autouse=True)
def _no_process_queue() -> Iterator[None]:
    yield
    JobQueue.reset()


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
@pytest.mark.parametrize("entry", ["Settings.build", "JobQueue", "configure"])
def test_an_empty_database_url_is_refused_by_every_entry_point(entry: str, blank: str) -> None:
    make = {"Settings.build": lambda: Settings.build(database_url=blank),
            "JobQueue": lambda: JobQueue(database_url=blank),
            "configure": lambda: activejob.configure(database_url=blank)}[entry]
    with pytest.raises(ConfigurationError) as refused:
        make()
    message = str(refused.value)
    assert message.startswith(f"database_url is empty ({blank!r})")
    assert "--database-url" in message and ENV_URL in message and "sqlite:///" in message


def test_a_refused_configure_keeps_the_process_queue(sqlite_url: str) -> None:
    queue = activejob.configure(sqlite_url)
    with pytest.raises(ConfigurationError):
        activejob.configure(database_url="")
    assert JobQueue.get() is queue


@pytest.mark.parametrize("url", [42, b"sqlite:///jobs.db", Path("jobs.db")])
def test_a_database_url_must_be_a_string(url: object) -> None:
    with pytest.raises(ConfigurationError, match="database_url must be a string"):
        Settings.build(database_url=url)


def test_an_explicit_in_memory_url_is_still_accepted() -> None:
    assert Settings.build(database_url="sqlite://").database_url == "sqlite://"


def test_none_means_the_environment_then_a_file_in_the_working_directory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_URL, "postgresql://app@db/app")
    assert Settings.build(database_url=None).database_url == "postgresql://app@db/app"
    monkeypatch.delenv(ENV_URL)
    assert Settings.build().database_url == f"sqlite:///{tmp_path / 'activejob.db'}"


def test_an_empty_environment_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_URL, "")
    assert Settings.build().database_url == f"sqlite:///{tmp_path / 'activejob.db'}"


def test_a_blank_environment_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_URL, "  ")
    with pytest.raises(ConfigurationError, match=f"{ENV_URL} is blank"):
        Settings.build()
    with pytest.raises(ConfigurationError, match=f"{ENV_URL} is blank"):
        JobQueue()


def test_sqlite_synchronous_is_normal_unless_full_is_asked_for() -> None:
    assert Settings.build(database_url="sqlite:///jobs.db").sqlite_synchronous == "NORMAL"
    assert Settings.build(database_url="sqlite:///jobs.db", sqlite_synchronous="full").sqlite_synchronous == "FULL"


@pytest.mark.parametrize("level", ["OFF", "EXTRA", 2, None])
def test_a_sqlite_synchronous_level_not_offered_is_refused(level: object) -> None:
    with pytest.raises(ConfigurationError, match="sqlite_synchronous must be 'NORMAL' or 'FULL', got"):
        Settings.build(sqlite_synchronous=level)


def test_every_refused_setting_is_named_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Settings.build(database_url="sqlite:///jobs.db", concurrency=0, lease=-1, watch="yes", concurency=3)
    assert str(refused.value) == (
        "unknown setting(s) ['concurency']; known: auto_migrate, cancel_grace, concurrency, database_url, "
        "event_retention, heartbeat_interval, lease, max_args_bytes, middleware, poll_interval, pool_size, "
        "progress_interval, prune_interval, queue_rate_limits, queues, recurring, retention, shutdown_grace, "
        "sqlite_synchronous, tracing, watch, worker_id; "
        "concurrency must be a whole number >= 1, got 0; lease must be a positive number of seconds, got -1; "
        "watch must be True or False, got 'yes'")


@pytest.mark.parametrize(("options", "message"), [
    ({"poll_interval": 0}, "poll_interval must be a positive number of seconds, got 0"),
    ({"poll_interval": float("nan")}, "poll_interval must be a positive number of seconds, got nan"),
    ({"lease": True}, "lease must be a positive number of seconds, got True"),
    ({"shutdown_grace": -1}, "shutdown_grace must be a number of seconds >= 0, got -1"),
    ({"lease": 3, "heartbeat_interval": 3}, "heartbeat_interval must be shorter than the lease"),
    ({"pool_size": 1.0}, "pool_size must be a whole number >= 1, got 1.0"),
    ({"worker_id": " "}, r"worker_id must be a non-empty string of at most 200 characters.* \(or None\), got ' '"),
    ({"retention": {"done": 60}}, r"retention maps finished statuses \(completed, failed, cancelled\) .* got 'done'"),
    ({"retention": {"failed": "1d"}}, r"retention maps finished statuses .* got '1d'"),
    ({"event_retention": 0}, "event_retention must be a timedelta or a positive number of seconds, got 0"),
    ({"max_args_bytes": 1}, "max_args_bytes must be a whole number of bytes >= 2, got 1"),
])
def test_a_bad_setting_is_refused_naming_it(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.build(database_url="sqlite:///jobs.db", **options)


def test_durations_become_seconds_and_retention_covers_every_finished_status() -> None:
    settings = Settings.build(database_url="sqlite:///jobs.db", lease=timedelta(minutes=1),
                              retention={"completed": 3600}, event_retention=timedelta(days=1))
    assert (settings.lease, settings.heartbeat_interval) == (60.0, 1.0)
    assert settings.retention == {"completed": timedelta(hours=1), "failed": timedelta(days=7),
                                  "cancelled": timedelta(days=7)}
    assert settings.event_retention == timedelta(days=1)
