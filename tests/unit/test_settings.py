"""`Settings.build(**options)`: defaults, derived values, parsing, and errors that name the setting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from activejob.config import Settings
from activejob.errors import ConfigurationError

pytestmark = pytest.mark.timeout(5)

URL = "sqlite:///unit-settings.db"  # never opened: building settings touches no database
WEEK = timedelta(days=7)


def build(**options: Any) -> Settings:
    return Settings.build(database_url=URL, **options)


def refused(**options: Any) -> str:
    with pytest.raises(ConfigurationError) as error:
        build(**options)
    return str(error.value)


def test_defaults() -> None:
    s = build()
    assert (s.database_url, s.concurrency, s.queues, s.queue_limits) == (URL, 10, None, {})
    assert (s.poll_interval, s.lease, s.shutdown_grace, s.cancel_grace) == (1.0, 30.0, 30.0, 5.0)
    assert (s.progress_interval, s.prune_interval, s.max_args_bytes) == (0.25, 60.0, 1_000_000)
    assert (s.auto_migrate, s.pool_size, s.watch, s.worker_id) == (True, 5, True, None)


def test_finished_jobs_and_events_are_kept_a_week_by_default() -> None:
    s = build()
    assert s.retention == {"completed": WEEK, "failed": WEEK, "cancelled": WEEK}
    assert s.event_retention == WEEK


def test_heartbeat_defaults_to_one_second_for_a_long_lease() -> None:
    assert build(lease=30).heartbeat_interval == 1.0


def test_heartbeat_defaults_to_a_third_of_a_short_lease() -> None:
    assert build(lease=1.5).heartbeat_interval == 0.5


def test_an_explicit_heartbeat_is_kept() -> None:
    assert build(lease=30, heartbeat_interval=10).heartbeat_interval == 10.0


def test_a_heartbeat_as_long_as_the_lease_is_refused() -> None:
    assert "heartbeat_interval must be shorter than the lease" in refused(lease=5, heartbeat_interval=5)


def test_seconds_may_be_given_as_timedelta() -> None:
    s = build(lease=timedelta(minutes=1), poll_interval=timedelta(milliseconds=50))
    assert (s.lease, s.poll_interval) == (60.0, 0.05)


def test_integer_seconds_become_floats() -> None:
    s = build(lease=10)
    assert s.lease == 10.0 and isinstance(s.lease, float)


@pytest.mark.parametrize("name", ["poll_interval", "lease", "progress_interval", "prune_interval",
                                  "heartbeat_interval"])
@pytest.mark.parametrize("value", [0, -1, "5", True])
def test_intervals_must_be_positive_seconds(name: str, value: Any) -> None:
    assert f"{name} must be a positive number of seconds" in refused(**{name: value})


@pytest.mark.parametrize("name", ["shutdown_grace", "cancel_grace"])
def test_graces_may_be_zero(name: str) -> None:
    assert getattr(build(**{name: 0}), name) == 0.0


@pytest.mark.parametrize("name", ["shutdown_grace", "cancel_grace"])
def test_graces_may_not_be_negative(name: str) -> None:
    assert refused(**{name: -1}).startswith(f"{name} ")


def test_queues_from_a_string_keep_their_order() -> None:
    s = build(queues="mail,default,reports")
    assert (s.queues, s.queue_limits) == (("mail", "default", "reports"), {})


def test_a_queue_limit_in_the_string_caps_that_queue_only() -> None:
    s = build(queues="mail:5,default")
    assert (s.queues, s.queue_limits, s.concurrency) == (("mail", "default"), {"mail": 5}, 10)


def test_limits_on_every_queue_add_up_to_the_concurrency() -> None:
    s = build(queues="mail:5,reports:2")
    assert (s.queue_limits, s.concurrency) == ({"mail": 5, "reports": 2}, 7)


def test_an_explicit_concurrency_wins_over_the_sum_of_limits() -> None:
    assert build(queues="mail:5,reports:2", concurrency=3).concurrency == 3


def test_queues_from_a_list_of_entries() -> None:
    s = build(queues=["mail:5", "default"])
    assert (s.queues, s.queue_limits) == (("mail", "default"), {"mail": 5})


def test_queues_from_a_mapping_of_limits() -> None:
    s = build(queues={"mail": 5, "default": None})
    assert (s.queues, s.queue_limits) == (("mail", "default"), {"mail": 5})


def test_queue_names_are_stripped_and_repeats_dropped() -> None:
    assert build(queues=" mail , default,mail ").queues == ("mail", "default")


def test_empty_entries_of_a_queue_string_are_skipped() -> None:
    assert build(queues="mail,,default,").queues == ("mail", "default")


@pytest.mark.parametrize("value", ["", " , "])
def test_a_queue_string_with_no_names_means_every_queue(value: str) -> None:
    assert build(queues=value).queues is None


def test_queues_of_another_type_are_refused() -> None:
    assert refused(queues=5).startswith("queues must be a list of queue names or a string")


def test_a_star_means_every_queue() -> None:
    assert build(queues="*").queues is None


def test_a_star_with_limits_is_refused() -> None:
    assert "per-queue limits need every queue named" in refused(queues="*,mail:5")


def test_an_empty_queue_name_in_a_list_is_refused() -> None:
    assert "queues: an empty queue name" in refused(queues=["mail", " "])


def test_a_limit_without_a_name_is_refused() -> None:
    assert "queues: an empty queue name" in refused(queues=":5")


@pytest.mark.parametrize("limit", ["0", "-2", "x", "1.5"])
def test_a_queue_limit_must_be_a_whole_number_of_at_least_one(limit: str) -> None:
    assert "queues: the limit of 'mail' must be a whole number >= 1" in refused(queues=f"mail:{limit}")


@pytest.mark.parametrize("limit", [True, 1.5, 0])
def test_a_mapping_limit_must_be_a_whole_number_of_at_least_one(limit: Any) -> None:
    assert "the limit of 'mail'" in refused(queues={"mail": limit})


def test_a_whole_float_limit_is_accepted() -> None:
    assert build(queues={"mail": 2.0}).queue_limits == {"mail": 2}


def test_retention_per_status_in_seconds_or_timedelta() -> None:
    s = build(retention={"completed": 3600, "failed": timedelta(days=30)})
    assert s.retention == {"completed": timedelta(hours=1), "failed": timedelta(days=30), "cancelled": WEEK}


def test_retention_of_an_unfinished_status_is_refused() -> None:
    message = refused(retention={"running": 60})
    assert message.startswith("retention ") and "completed, failed, cancelled" in message and "'running'" in message


@pytest.mark.parametrize("keep", [0, -1])
def test_a_retention_of_no_positive_seconds_is_refused(keep: int) -> None:
    message = refused(retention={"completed": keep})
    assert message.startswith("retention ") and f"got {keep}" in message


def test_no_retention_means_the_default_for_every_status() -> None:
    assert build(retention=None).retention == {"completed": WEEK, "failed": WEEK, "cancelled": WEEK}


def test_event_retention_in_seconds() -> None:
    assert build(event_retention=60).event_retention == timedelta(minutes=1)


def test_an_event_retention_of_zero_seconds_is_refused() -> None:
    assert refused(event_retention=0).startswith("event_retention ")


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "4"])
def test_concurrency_must_be_a_whole_number_of_at_least_one(value: Any) -> None:
    assert "concurrency must be a whole number >= 1" in refused(concurrency=value)


@pytest.mark.parametrize("value", [0, True])
def test_pool_size_must_be_a_whole_number_of_at_least_one(value: Any) -> None:
    assert "pool_size must be a whole number >= 1" in refused(pool_size=value)


@pytest.mark.parametrize("name", ["watch", "auto_migrate"])
def test_switches_must_be_booleans(name: str) -> None:
    assert f"{name} must be True or False" in refused(**{name: "yes"})


@pytest.mark.parametrize("value", ["", "  ", 7, "w" * 201, "a\x00b"])
def test_a_worker_id_must_be_a_non_empty_string_its_columns_can_hold(value: Any) -> None:
    assert "worker_id must be a non-empty string of at most 200 characters, with no NUL" in refused(worker_id=value)


@pytest.mark.parametrize("name", ["retention", "event_retention"])
def test_a_negative_retention_timedelta_is_refused(name: str) -> None:
    keep = timedelta(days=-1)
    message = refused(**{name: {"failed": keep} if name == "retention" else keep})
    assert message.startswith(f"{name} ") and "timedelta(days=-1)" in message


@pytest.mark.parametrize("value", [1, 2.5, "100"])
def test_max_args_bytes_must_be_a_whole_number_of_at_least_two(value: Any) -> None:
    message = refused(max_args_bytes=value)
    assert message.startswith("max_args_bytes ") and f"got {value!r}" in message


def test_every_refused_setting_is_named_in_one_error() -> None:
    message = refused(concurrency=0, lease=-1, watch="yes")
    assert all(name in message for name in ("concurrency", "lease", "watch"))


@pytest.mark.parametrize(("given", "kept"), [("full", "FULL"), ("NORMAL", "NORMAL")])
def test_sqlite_synchronous_is_read_like_a_pragma(given: str, kept: str) -> None:
    assert build(sqlite_synchronous=given).sqlite_synchronous == kept


def test_sqlite_synchronous_defaults_to_normal_and_refuses_other_levels() -> None:
    assert build().sqlite_synchronous == "NORMAL"
    assert "sqlite_synchronous must be 'NORMAL' or 'FULL'" in refused(sqlite_synchronous="OFF")


def test_an_unknown_setting_is_refused_listing_the_known_ones() -> None:
    message = refused(concurency=4)
    assert "unknown setting(s) ['concurency']" in message and "concurrency" in message


def test_derived_queue_limits_cannot_be_set_directly() -> None:
    assert "unknown setting(s) ['queue_limits']" in refused(queue_limits={"mail": 1})


@pytest.mark.parametrize("url", ["mysql://app@db/app", "mssql+pyodbc://app:secret@db/app"])
def test_a_database_activejob_does_not_run_on_is_refused_naming_what_it_does(url: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        Settings.build(database_url=url)
    message = str(error.value)
    assert "is not a database activejob runs on: use SQLite or PostgreSQL" in message
    assert "secret" not in message
