"""Arguments are validated at enqueue, stored as JSON only, and come back exactly."""

from __future__ import annotations

import enum
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from sqlalchemy import create_engine, text

from activejob import BaseJob, JobArgumentsError, JobQueue, job


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str


class RichArgs(BaseModel):
    when: datetime
    ident: uuid.UUID
    color: Color
    amount: Decimal
    address: Address
    tags: list[str] = []


class EmailArgs(BaseModel):
    to: str
    subject: str


class AnyArgs(BaseModel):
    value: Any = None
    ratio: float = 0.0


@job("args_rich", schema=RichArgs)
class Rich(BaseJob[RichArgs]):
    def perform(self, args: RichArgs) -> dict[str, Any]:
        return {"ok": True}


@job("args_email", schema=EmailArgs)
class Email(BaseJob[EmailArgs]):
    def perform(self, args: EmailArgs) -> None: ...


@job("args_any", schema=AnyArgs)
class Anything(BaseJob[AnyArgs]):
    def perform(self, args: AnyArgs) -> None: ...


def _job_rows(queue: JobQueue) -> int:
    return queue.store.count()


RICH = RichArgs(
    when=datetime(2031, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), ident=uuid.UUID(int=7), color=Color.BLUE,
    amount=Decimal("12345.678901234567890"), address=Address(city="Lyon", zip="69001"), tags=["a", "b"],
)


def test_rich_types_round_trip_exactly(queue: JobQueue) -> None:
    seen: list[RichArgs] = []

    @job("args_rich_seen", schema=RichArgs)
    class Seen(BaseJob[RichArgs]):
        def perform(self, args: RichArgs) -> None:
            seen.append(args)

    Seen.perform_later(RICH)
    queue.run_until_idle()
    assert seen == [RICH]
    assert seen[0].amount == Decimal("12345.678901234567890")
    assert seen[0].when.tzinfo is not None


def test_arguments_may_be_keywords_or_a_schema_instance(queue: JobQueue) -> None:
    a = Email.perform_later(to="a@example.com", subject="Hi")
    b = Email.perform_later(EmailArgs(to="b@example.com", subject="Hi"))
    assert queue.get_job(a.id).args == {"to": "a@example.com", "subject": "Hi"}  # type: ignore[union-attr]
    assert queue.get_job(b.id).args == {"to": "b@example.com", "subject": "Hi"}  # type: ignore[union-attr]


def test_invalid_arguments_name_the_job_and_field_and_write_nothing(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError) as caught:
        Email.perform_later(to="a@example.com")
    assert "args_email" in str(caught.value)
    assert "subject" in str(caught.value)
    assert caught.value.fields == ["subject"]
    assert _job_rows(queue) == 0


def test_a_misspelled_keyword_is_refused_with_a_suggestion(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError) as caught:
        Email.perform_later(to="a@example.com", subject="Hi", subjet="Hi")
    message = str(caught.value)
    assert message.startswith("args_email: unknown argument(s) 'subjet' (did you mean 'subject'?)")
    assert "EmailArgs takes to, subject" in message
    assert caught.value.fields == ["subjet"]
    assert _job_rows(queue) == 0


def test_a_keyword_in_a_positional_dict_is_checked_too(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="unknown argument"):
        Email.perform_later({"to": "a@example.com", "subject": "Hi", "cc": "b@example.com"})
    with pytest.raises(JobArgumentsError, match="unknown argument"):
        Email.perform_all_later([{"to": "a@example.com", "subject": "Hi"},
                                 {"to": "b@example.com", "subject": "Hi", "bcc": "c"}])
    assert _job_rows(queue) == 0


def test_an_unknown_keyword_is_refused_by_perform_now_as_well() -> None:
    with pytest.raises(JobArgumentsError, match="unknown argument"):
        Email.perform_now(to="a@example.com", subject="Hi", urgent=True)


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    recipient: str = Field(alias="to")
    topic: str = Field("", validation_alias=AliasChoices("topic", "subject"))


@job("args_aliased", schema=Aliased)
class AliasedJob(BaseJob[Aliased]):
    def perform(self, args: Aliased) -> None: ...


def test_aliases_and_field_names_are_both_known_keywords(queue: JobQueue) -> None:
    a = AliasedJob.perform_later(to="a@example.com", subject="Hi")
    b = AliasedJob.perform_later(recipient="b@example.com", topic="Hi")
    assert queue.get_job(a.id).args == {"recipient": "a@example.com", "topic": "Hi"}  # type: ignore[union-attr]
    assert queue.get_job(b.id).args == {"recipient": "b@example.com", "topic": "Hi"}  # type: ignore[union-attr]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")

    n: int = 0


@job("args_lenient", schema=Lenient)
class LenientJob(BaseJob[Lenient]):
    def perform(self, args: Lenient) -> None: ...


def test_a_schema_that_sets_extra_keeps_its_own_rule(queue: JobQueue) -> None:
    handle = LenientJob.perform_later(n=1, ignored="yes")
    assert queue.get_job(handle.id).args == {"n": 1}  # type: ignore[union-attr]


def test_a_wrong_type_is_refused(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match=r"args_rich: invalid arguments: field 'amount'"):
        Rich.perform_later(**{**RICH.model_dump(), "amount": "lots"})
    assert _job_rows(queue) == 0


def test_nan_is_refused_at_enqueue(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="args_any: .*ratio"):
        Anything.perform_later(ratio=float("nan"))
    assert _job_rows(queue) == 0


def test_nan_in_a_float_field_is_refused_naming_the_job_once_and_why(queue: JobQueue) -> None:
    class Ratio(BaseModel):
        ratio: float

    @job("args_ratio", schema=Ratio)
    class Ratioed(BaseJob[Ratio]):
        def perform(self, args: Ratio) -> None:
            pass

    with pytest.raises(JobArgumentsError) as refused:
        Ratioed.perform_later(ratio=float("inf"))
    assert str(refused.value) == ("args_ratio: arguments do not survive a JSON round trip (NaN and infinity "
                                  "become null): field 'ratio': Input should be a valid number")
    assert refused.value.fields == ["ratio"]
    assert _job_rows(queue) == 0


def test_values_without_a_json_form_are_refused(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="args_any"):
        Anything.perform_later(value={object()})
    with pytest.raises(JobArgumentsError, match="args_any"):
        Anything.perform_later(value=b"\xff\xfe")
    assert _job_rows(queue) == 0


def test_a_set_that_would_come_back_a_list_is_refused(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="would not come back unchanged"):
        Anything.perform_later(value={1, 2})


def test_arguments_over_the_size_cap_are_refused(db_url: str) -> None:
    import activejob

    queue = activejob.configure(db_url, max_args_bytes=1000)
    try:
        with pytest.raises(JobArgumentsError, match="over the limit of 1000"):
            Email.perform_later(to="a" * 2000, subject="x")
        assert _job_rows(queue) == 0
    finally:
        JobQueue.reset()


def test_the_default_cap_is_one_megabyte(queue: JobQueue) -> None:
    assert queue.max_args_bytes == 1_000_000
    with pytest.raises(JobArgumentsError, match="over the limit"):
        Email.perform_later(to="a" * 1_000_001, subject="x")


def test_arguments_are_stored_as_plain_json(queue: JobQueue) -> None:
    handle = Email.perform_later(to="a@example.com", subject="Hi")
    engine = create_engine(queue.settings.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT args FROM activejob_jobs WHERE id = :id"), {"id": handle.id}).scalar()
    engine.dispose()
    assert stored == '{"to":"a@example.com","subject":"Hi"}'


def test_a_stored_job_with_a_key_its_schema_no_longer_declares_still_runs(queue: JobQueue) -> None:
    # As after a field was removed from the schema while jobs carrying it were queued.
    handle = Email.perform_later(to="a@example.com", subject="Hi")
    engine = create_engine(queue.settings.database_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE activejob_jobs SET args = :args WHERE id = :id"),
                     {"id": handle.id, "args": '{"to":"a@example.com","subject":"Hi","priority":"high"}'})
    engine.dispose()
    queue.run_until_idle()
    assert handle.status == "completed"


def test_bulk_enqueue_validates_every_item_before_writing(queue: JobQueue) -> None:
    with pytest.raises(JobArgumentsError, match="item 1"):
        Email.perform_all_later([{"to": "a", "subject": "s"}, {"to": "b"}])
    assert _job_rows(queue) == 0


def test_long_errors_are_truncated_when_stored(queue: JobQueue) -> None:
    @job("args_loud_failure", schema=EmailArgs, max_retries=0)
    class Loud(BaseJob[EmailArgs]):
        def perform(self, args: EmailArgs) -> None:
            raise RuntimeError("x" * 100_000)

    handle = Loud.perform_later(to="a", subject="b")
    queue.run_until_idle()
    info = queue.get_job(handle.id)
    assert info is not None and info.status == "failed"
    assert info.error is not None and len(info.error) < 20_000
    assert re.search(r"characters,? cut", info.error)  # the store's wording or arguments.truncate's
