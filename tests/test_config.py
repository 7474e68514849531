"""Settings: an empty database URL is a mistake to report, not an in-memory database to use."""

from __future__ import annotations

from collections.abc import Iterator
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
