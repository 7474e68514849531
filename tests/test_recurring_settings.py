"""Schedules declared in settings: `configure(recurring=[...])`, checked when configured
(what can be checked then) and resolved by job name when a worker or a reader needs them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel

import activejob
from activejob import BaseJob, ConfigurationError, JobQueue, job, recurring


class CleanupArgs(BaseModel):
    days: int


@job("settings_cleanup", schema=CleanupArgs)
class Cleanup(BaseJob[CleanupArgs]):
    def perform(self, args: CleanupArgs) -> int:
        return args.days


NIGHTLY = {"key": "nightly", "job": "settings_cleanup", "cron": "0 3 * * *", "args": {"days": 30},
           "timezone": "Europe/Rome"}


@pytest.fixture(autouse=True)
def _forget_the_queue() -> Iterator[None]:
    # Each test configures its own queue (the schedules are reset by conftest's snapshot).
    yield
    JobQueue.reset()


def configure(db_url: str, *entries: dict[str, Any]) -> JobQueue:
    return activejob.configure(db_url, poll_interval=0.05, lease=5, recurring=list(entries))


def test_a_declared_schedule_is_enqueued_by_a_worker(db_url: str) -> None:
    queue = configure(db_url, NIGHTLY)
    with freeze_time("2030-01-01 12:00:00"):
        queue.run_until_idle()
    (scheduled,) = queue.list_jobs(name="settings_cleanup")
    assert scheduled.run_at == datetime(2030, 1, 2, 2, tzinfo=UTC)  # 03:00 in Rome, in winter
    assert scheduled.unique_key == "cron:nightly:2030-01-02T02:00:00+00:00"
    assert scheduled.args == {"days": 30}


def test_a_declared_schedule_runs_at_its_slot(db_url: str) -> None:
    queue = configure(db_url, NIGHTLY)
    with freeze_time("2030-01-01 12:00:00") as frozen:
        queue.run_until_idle()
        frozen.move_to("2030-01-02 02:00:01")
        queue.run_until_idle()
    (done,) = queue.list_jobs(name="settings_cleanup", status="completed")
    assert done.result == 30


def test_declared_catch_up_applies_after_an_outage(db_url: str) -> None:
    queue = configure(db_url, {**NIGHTLY, "cron": "0 * * * *", "timezone": "UTC", "catch_up": "latest"})
    with freeze_time("2030-01-01 10:30:00") as frozen:
        queue.run_until_idle()
        frozen.move_to("2030-01-01 15:10:00")
        queue.run_until_idle()
    (done,) = queue.list_jobs(name="settings_cleanup", status="completed")
    assert done.unique_key == "cron:nightly:2030-01-01T15:00:00+00:00"


def test_a_job_class_names_its_job(sqlite_url: str) -> None:
    queue = configure(sqlite_url, {**NIGHTLY, "job": Cleanup})
    assert [s["job"] for s in queue.recurring()] == ["settings_cleanup"]


def test_the_key_defaults_to_the_job_name(sqlite_url: str) -> None:
    entry = {k: v for k, v in NIGHTLY.items() if k != "key"}
    assert [s["key"] for s in configure(sqlite_url, entry).recurring()] == ["settings_cleanup"]


def test_settings_replace_a_code_schedule_of_the_same_key(sqlite_url: str) -> None:
    recurring("*/5 * * * *", Cleanup, args={"days": 1}, key="nightly")
    (shown,) = configure(sqlite_url, NIGHTLY).recurring()
    assert (shown["cron"], shown["source"], shown["args"]) == ("0 3 * * *", "settings", {"days": 30})


def test_code_and_settings_schedules_are_listed_together_by_key(sqlite_url: str) -> None:
    recurring("*/5 * * * *", Cleanup, args={"days": 1}, key="every-5")
    shown = configure(sqlite_url, NIGHTLY).recurring()
    assert [(s["key"], s["source"]) for s in shown] == [("every-5", "code"), ("nightly", "settings")]


def test_an_unknown_job_name_is_accepted_until_it_is_needed(sqlite_url: str) -> None:
    queue = configure(sqlite_url, {**NIGHTLY, "job": "settings_later"})
    (shown,) = queue.recurring()
    assert shown["error"].startswith("schedule 'nightly': no job type named 'settings_later' is registered; ")


def test_a_job_type_imported_after_configure_is_found_then(sqlite_url: str) -> None:
    queue = configure(sqlite_url, {**NIGHTLY, "job": "settings_later"})

    @job("settings_later", schema=CleanupArgs)
    class Later(BaseJob[CleanupArgs]):
        def perform(self, args: CleanupArgs) -> None: ...

    with freeze_time("2030-01-01 12:00:00"):
        queue.run_until_idle()
    assert [j.unique_key for j in queue.list_jobs(name="settings_later")] == ["cron:nightly:2030-01-02T02:00:00+00:00"]
    assert queue.recurring()[0]["error"] is None


def test_a_worker_reports_an_unknown_job_name_at_start(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    queue = configure(sqlite_url, {**NIGHTLY, "job": "settings_nobody"})
    with caplog.at_level(logging.ERROR, logger="activejob.worker"):
        queue.run_until_idle()
    assert "schedule 'nightly': no job type named 'settings_nobody' is registered" in caplog.text
    assert "this worker does not enqueue it" in caplog.text
    assert queue.list_jobs() == []


def test_a_worker_with_an_unknown_job_name_still_keeps_the_other_schedules(sqlite_url: str) -> None:
    queue = configure(sqlite_url, {**NIGHTLY, "job": "settings_nobody"}, {**NIGHTLY, "key": "other"})
    with freeze_time("2030-01-01 12:00:00"):
        queue.run_until_idle()
    assert [j.unique_key for j in queue.list_jobs()] == ["cron:other:2030-01-02T02:00:00+00:00"]


@pytest.mark.parametrize(("entry", "message"), [
    ({**NIGHTLY, "args": {"days": "many"}},
     "recurring: settings_cleanup: schedule 'nightly': invalid arguments: field 'days'"),
    ({**NIGHTLY, "args": {}}, "schedule 'nightly': invalid arguments: field 'days': Field required"),
    ({**NIGHTLY, "timezone": "Europe/Rom"}, "schedule 'nightly': unknown time zone 'Europe/Rom'"),
    ({**NIGHTLY, "cron": "every night"}, "schedule 'nightly': 'every night' is not a valid cron expression"),
    ({**NIGHTLY, "catch_up": "some"}, "schedule 'nightly': catch_up must be one of 'none', 'latest', 'all'"),
    ({**NIGHTLY, "when": "3am"}, "schedule 'nightly': unknown field(s) ['when']"),
    ({k: v for k, v in NIGHTLY.items() if k != "cron"}, "schedule 'nightly': cron is missing"),
    ({**NIGHTLY, "job": None}, "schedule 'nightly': job must be a job name"),
    ({**NIGHTLY, "args": [30]}, "schedule 'nightly': args must be a mapping"),
    ({**NIGHTLY, "priority": "high"}, "schedule 'nightly': priority must be a whole number"),
    ("nightly", "recurring[0] must be a mapping"),
], ids=["args-type", "args-missing", "timezone", "cron", "catch_up", "unknown-field", "no-cron", "no-job",
        "args-not-a-mapping", "priority", "not-a-mapping"])
def test_a_bad_entry_is_refused_naming_the_schedule_and_the_field(sqlite_url: str, entry: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match="recurring") as refused:
        activejob.configure(sqlite_url, recurring=[entry])
    assert message in str(refused.value)


def test_duplicate_keys_are_refused(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError, match="recurring: two schedules have the key 'nightly'; each needs its own"):
        configure(sqlite_url, NIGHTLY, {**NIGHTLY, "cron": "0 4 * * *"})


def test_two_entries_of_one_job_without_keys_are_refused_as_duplicates(sqlite_url: str) -> None:
    entry = {"job": "settings_cleanup", "cron": "0 3 * * *", "args": {"days": 1}}
    with pytest.raises(ConfigurationError, match="two schedules have the key 'settings_cleanup'"):
        configure(sqlite_url, entry, {**entry, "cron": "0 4 * * *"})


def test_recurring_must_be_a_list(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError, match="recurring must be a list of schedules"):
        activejob.configure(sqlite_url, recurring=NIGHTLY)


def test_a_key_too_long_for_its_slots_unique_keys_is_refused(sqlite_url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"recurring: schedule 'kkkk.*unique_key is .* characters long"):
        configure(sqlite_url, {**NIGHTLY, "key": "k" * 250})


def test_an_unknown_job_name_suggests_a_close_one(sqlite_url: str) -> None:
    (shown,) = configure(sqlite_url, {**NIGHTLY, "job": "settings_claenup"}).recurring()
    assert shown["error"].endswith("did you mean 'settings_cleanup'?")
