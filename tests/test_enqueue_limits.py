"""What the jobs table can hold is checked at enqueue: argument size in UTF-8 bytes,
priorities that fit the column, text every database can store. A bad value is a clear
error naming the job and the option or field, and nothing is written. And bulk enqueue
keeps working however the tables were emptied before it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, ConfigurationError, JobArgumentsError, JobQueue, clock, job
from activejob.errors import JobOptionsError
from activejob.testing import recorded_signals


class Args(BaseModel):
    n: int = 0


class TextArgs(BaseModel):
    text: str = ""
    items: list[str] = []


@job("limits_plain", schema=Args)
class Plain(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n


@job("limits_text", schema=TextArgs)
class Texty(BaseJob[TextArgs]):
    def perform(self, args: TextArgs) -> str:
        return args.text


BAD_TEXT = {
    "a lone surrogate": ("bad \udcff name", "lone surrogate"),
    "a NUL": ("bad \x00 name", "NUL"),
}
KEYS = ["fine", *(value for value, _ in BAD_TEXT.values())]


@job("limits_keyed", schema=Args, concurrency_limit=1, concurrency_key=lambda a: KEYS[a.n])
class Keyed(BaseJob[Args]):
    def perform(self, args: Args) -> None: ...


# -- 1. argument size is counted in UTF-8 bytes ------------------------------------------


def test_the_size_cap_counts_utf8_bytes_not_characters(queue: JobQueue) -> None:
    text = "é" * 600_000  # 600,000 characters, 1,200,000 bytes
    size = len(TextArgs(text=text).model_dump_json().encode())
    with pytest.raises(JobArgumentsError, match=rf"limits_text: arguments are {size} bytes .* limit of 1000000"):
        Texty.perform_later(text=text)
    with pytest.raises(JobArgumentsError, match=f"limits_text: item 0: arguments are {size} bytes"):
        Texty.perform_all_later([{"text": text}])
    assert queue.store.count() == 0


def test_the_size_cap_admits_multibyte_arguments_up_to_the_limit(db_url: str) -> None:
    queue = activejob.configure(db_url, max_args_bytes=1000)
    try:
        exact = "€" * ((1000 - len('{"text":"","items":[]}')) // 3)  # 3 bytes each
        handle = Texty.perform_later(text=exact)
        assert queue.get_job(handle.id).args["text"] == exact  # type: ignore[union-attr]
        with pytest.raises(JobArgumentsError, match="over the limit of 1000"):
            Texty.perform_later(text=exact + "€")
        assert queue.store.count() == 1
    finally:
        JobQueue.reset()


# -- 2. priority --------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 2**63, True, 1.9, 2.0, "5", Decimal(3)])
def test_a_priority_the_column_cannot_hold_is_refused(queue: JobQueue, priority: Any) -> None:
    with pytest.raises(JobOptionsError, match=r"limits_plain: priority must be an integer from -2147483648 to "
                                              r"2147483647") as caught:
        Plain.set(priority=priority).perform_later(n=1)
    assert (caught.value.job, caught.value.option) == ("limits_plain", "priority")
    assert isinstance(caught.value, ConfigurationError) and isinstance(caught.value, ValueError)
    with pytest.raises(JobOptionsError, match="limits_plain: priority"):
        Plain.set(priority=priority).perform_all_later([{"n": 1}, {"n": 2}])
    assert queue.store.count() == 0


def test_the_extreme_priorities_are_stored_as_given(queue: JobQueue) -> None:
    high = Plain.set(priority=2**31 - 1).perform_later(n=1)
    low = Plain.set(priority=-(2**31)).perform_all_later([{"n": 2}, {"n": 3}])
    assert queue.get_job(high.id).priority == 2**31 - 1  # type: ignore[union-attr]
    assert {queue.get_job(h.id).priority for h in low} == {-(2**31)}  # type: ignore[union-attr]


def test_an_integer_like_priority_is_taken_as_an_int(queue: JobQueue) -> None:
    class Level:
        def __index__(self) -> int:
            return 7

    configured = Plain.set(priority=Level())
    assert configured.priority == 7 and type(configured.priority) is int
    assert queue.get_job(configured.perform_later().id).priority == 7  # type: ignore[union-attr]


# -- 3. text options every database can store ---------------------------------------------


@pytest.mark.parametrize("option", ["queue", "owner", "unique_key"])
@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_text_no_database_can_store_is_refused_in_options(queue: JobQueue, option: str, case: str) -> None:
    value, what = BAD_TEXT[case]
    with pytest.raises(JobOptionsError, match=f"limits_plain: {option} contains a {what}") as caught:
        Plain.set(**{option: value}).perform_later(n=1)
    assert (caught.value.job, caught.value.option) == ("limits_plain", option)
    with pytest.raises(JobOptionsError, match=f"limits_plain: {option}"):
        Plain.set(**{option: value}).perform_all_later([{"n": 1}, {"n": 2}])
    with pytest.raises(JobOptionsError, match=f"limits_plain: {option}"):
        anyio.run(lambda: Plain.set(**{option: value}).aperform_later(n=1))
    assert queue.store.count() == 0


@pytest.mark.parametrize(("option", "limit"), [("queue", 200), ("owner", 200), ("unique_key", 255)])
def test_options_longer_than_their_column_are_refused(queue: JobQueue, option: str, limit: int) -> None:
    with pytest.raises(JobOptionsError, match=f"limits_plain: {option} is {limit + 1} characters long; "
                                              f"its column holds at most {limit}"):
        Plain.set(**{option: "é" * (limit + 1)}).perform_later(n=1)
    with pytest.raises(JobOptionsError, match=f"limits_plain: {option} is {limit + 1} characters"):
        Plain.set(**{option: "x" * (limit + 1)}).perform_all_later([{"n": 1}])
    assert queue.store.count() == 0
    # Columns count characters, not bytes: the longest multibyte value fits on both databases.
    longest = "é" * limit
    info = queue.get_job(Plain.set(**{option: longest}).perform_later(n=1).id)
    assert getattr(info, option) == longest


def test_an_owner_that_is_not_a_string_is_stored_as_its_text(queue: JobQueue) -> None:
    assert queue.get_job(Plain.set(owner=42).perform_later().id).owner == "42"  # type: ignore[union-attr]
    with pytest.raises(JobOptionsError, match="limits_plain: owner is 300 characters long"):
        Plain.set(owner=10**299).perform_later()


@pytest.mark.parametrize("queue_name", ["", "   ", 5])
def test_a_blank_or_non_text_queue_is_refused(queue_name: Any) -> None:
    with pytest.raises(JobOptionsError, match="limits_plain: queue must be a non-empty string"):
        Plain.set(queue=queue_name)


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
def test_a_concurrency_key_no_database_can_store_is_refused(queue: JobQueue, case: str) -> None:
    value, what = BAD_TEXT[case]
    with pytest.raises(JobArgumentsError, match=f"limits_keyed: concurrency_key gave a key that contains a {what}"):
        Keyed.perform_later(n=KEYS.index(value))
    with pytest.raises(JobArgumentsError, match="limits_keyed: item 1: concurrency_key"):
        Keyed.perform_all_later([{"n": 0}, {"n": KEYS.index(value)}])
    assert queue.store.count() == 0


@pytest.mark.parametrize(("name", "message"), [
    ("limits_\udcff", "contains a lone surrogate"),
    ("limits_\x00", "contains a NUL character"),
    ("j" * 201, "is 201 characters long"),
])
def test_a_job_name_no_database_can_store_is_refused(name: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"the job name .* {message}"):
        job(name, schema=Args)


def test_a_recurring_key_too_long_for_the_unique_key_is_refused_when_registered() -> None:
    with pytest.raises(JobOptionsError, match="limits_plain: unique_key is .* characters long"):
        activejob.recurring("0 2 * * *", Plain, key="k" * 250)


# -- arguments with text no database can store ---------------------------------------------


def test_arguments_with_a_lone_surrogate_are_refused_naming_the_field(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match=r"limits_text: arguments cannot be stored as JSON "
                                                r"\(field\(s\): items\): text with a lone surrogate") as caught:
        Texty.perform_later(text="fine", items=["ok", "bad \udcff"])
    assert caught.value.fields == ["items"]
    with pytest.raises(JobArgumentsError, match="limits_text: item 0: arguments cannot be stored as JSON"):
        Texty.perform_all_later([{"text": "\udcff"}])
    assert queue.store.count() == 0


def test_arguments_with_nul_and_any_unicode_come_back_exactly(queue: JobQueue) -> None:
    text = "nul \x00 | emoji 😀 | cjk 漢字 | rtl שלום | combining é"
    handle = Texty.perform_later(text=text, items=["\x00", "\U0010ffff"])
    many = Texty.perform_all_later([{"text": text}, {"text": "\x00\x00"}])
    queue.run_until_idle()
    assert handle.result == text
    assert queue.get_job(handle.id).args == {"text": text, "items": ["\x00", "\U0010ffff"]}  # type: ignore[union-attr]
    assert [h.result for h in many] == [text, "\x00\x00"]


# -- other options ------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "message"), [
    ({"wait": float("nan")}, "wait must be a timedelta or a number of seconds"),
    ({"wait": "soon"}, "wait must be a timedelta or a number of seconds"),
    ({"wait": 1e20}, "wait is out of range"),
    ({"wait": timedelta(days=999_999_999)}, "wait gives a time a datetime cannot hold"),
    ({"wait_until": "tomorrow"}, "wait_until must be a datetime"),
    ({"parent": "abc"}, "parent must be a job, a handle or a job id"),
    ({"parent": 2**63}, "parent must be a job, a handle or a job id"),
])
def test_other_bad_options_are_refused_naming_the_job(queue: JobQueue, options: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(JobOptionsError, match=f"limits_plain: {message}"):
        Plain.set(**options).perform_later(n=1)
    assert queue.store.count() == 0


# -- 4. bulk enqueue after the tables were emptied -----------------------------------------


def _emptied(queue: JobQueue, how: str) -> None:
    handles = Plain.perform_all_later([{"n": i} for i in range(5)])
    queue.run_until_idle()
    if how == "deleted":
        for handle in handles:
            queue.delete(handle.id)
    else:
        queue.settings.retention = {"completed": timedelta(0)}
        assert queue.prune() == 5
    assert queue.store.count() == 0


@pytest.mark.parametrize("how", ["deleted", "pruned"])
def test_bulk_enqueue_after_the_jobs_table_was_emptied(queue: JobQueue, how: str) -> None:
    _emptied(queue, how)
    handles = Plain.perform_all_later([{"n": 10 + i} for i in range(5)])
    assert len({h.id for h in handles}) == 5
    assert min(h.id for h in handles) > 5  # ids are never reused
    assert [queue.get_job(h.id).args["n"] for h in handles] == [10, 11, 12, 13, 14]  # type: ignore[union-attr]
    queue.run_until_idle()
    assert [h.result for h in handles] == [10, 11, 12, 13, 14]


def test_bulk_enqueue_after_the_newest_jobs_were_deleted(queue: JobQueue) -> None:
    first = Plain.perform_all_later([{"n": i} for i in range(5)])
    queue.delete(first[-1].id)
    queue.delete(first[-2].id)
    single = Plain.perform_later(n=100)
    more = Plain.perform_all_later([{"n": 200 + i} for i in range(3)])
    assert single.id > first[-1].id
    assert [queue.get_job(h.id).args["n"] for h in more] == [200, 201, 202]  # type: ignore[union-attr]


def test_bulk_enqueue_event_ids_are_right_after_the_event_log_was_pruned(queue: JobQueue) -> None:
    Plain.perform_all_later([{"n": i} for i in range(5)])
    seen = queue.events()[-1].id
    assert queue.store.prune_events(clock.now() + timedelta(seconds=1)) == 5
    assert queue.events() == []
    with recorded_signals("job_enqueued") as log:
        handles = Plain.perform_all_later([{"n": 10 + i} for i in range(5)])
    signalled = {p["job_id"]: p["event_id"] for p in log.payloads("job_enqueued")}
    stored = {e.job_id: e.id for e in queue.events(after=seen)}
    assert signalled == stored
    assert sorted(stored) == sorted(h.id for h in handles)
    assert min(stored.values()) > seen  # a reader resuming `after=seen` misses nothing


def test_every_wrong_option_of_one_set_is_named_at_once(queue: JobQueue) -> None:
    with pytest.raises(JobOptionsError, match=r"limits_plain: priority must be .*; wait must be .*, got 'soon'") \
            as caught:
        Plain.set(priority=2**40, wait="soon").perform_later(n=1)
    assert caught.value.option == "priority"
    assert queue.store.count() == 0


def test_run_on_failure_must_be_true_or_false(queue: JobQueue) -> None:
    with pytest.raises(JobOptionsError, match="limits_plain: run_on_failure must be True or False, got 'yes'"):
        Plain.set(run_on_failure="yes").perform_later(n=1)
    assert queue.store.count() == 0
