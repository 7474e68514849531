"""`@job(version=..., upcasters=...)`: jobs stored by older code run with today's arguments."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from runner_support import job_info

from activejob import ArgumentsVersionError, BaseJob, ConfigurationError, JobQueue, job, registry
from activejob.upcasting import current_args


class V1(BaseModel):
    name: str


class V2(BaseModel):
    name: str
    locale: str


class V3(BaseModel):
    name: str
    locale: str
    formal: bool


def _old_greet() -> type[BaseJob[V1]]:
    """The job as the code before the deploy defined it."""
    registry.remove("va_greet")  # another process's code, in effect

    @job("va_greet", schema=V1)
    class Greet(BaseJob[V1]):
        def perform(self, args: V1) -> str:
            return args.name

    return Greet


def _greet_v3(upcasters: dict[int, Any]) -> type[BaseJob[V3]]:
    """The job after two deploys."""
    registry.remove("va_greet")

    @job("va_greet", schema=V3, version=3, upcasters=upcasters)
    class Greet(BaseJob[V3]):
        def perform(self, args: V3) -> dict[str, Any]:
            return args.model_dump()

    return Greet


TO_V2 = {1: lambda args: {**args, "locale": "en"}}
TO_V3 = {**TO_V2, 2: lambda args: {**args, "formal": args["locale"] == "de"}}


def test_the_version_is_stored_with_each_job(queue: JobQueue) -> None:
    handle = _greet_v3(TO_V3).perform_later(name="Ada", locale="de", formal=True)
    assert job_info(queue, handle.id).args_version == 3


def test_a_job_stored_at_version_1_runs_through_the_chain_of_upcasters(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3(TO_V3)
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.result) == ("completed", {"name": "Ada", "locale": "en", "formal": False})


def test_a_job_with_no_upcaster_from_its_version_fails_at_once_naming_both(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3({2: TO_V3[2]})
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 1)
    assert info.error == ("ArgumentsVersionError: va_greet: stored arguments are version 1, this code is version 3, "
                          "and no upcaster leads from 1 (upcasters are given for 2)")


def test_a_gap_in_the_middle_of_the_chain_names_the_missing_link(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3(dict(TO_V2))
    queue.run_until_idle()
    assert job_info(queue, handle.id).error.endswith("no upcaster leads from 2 (upcasters are given for 1)")


def test_a_job_stored_by_newer_code_fails_at_once(queue: JobQueue) -> None:
    handle = _greet_v3(TO_V3).perform_later(name="Ada", locale="en", formal=False)
    _old_greet()  # a rollback
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 1)
    assert "stored arguments are version 3, this code is version 1" in info.error


def test_an_upcaster_that_raises_fails_the_job_at_once(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3({1: lambda args: {**args, "locale": args["missing"]}, 2: TO_V3[2]})
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.attempts) == ("failed", 1)
    assert "the upcaster from version 1 raised KeyError" in info.error


def test_the_view_of_a_stored_jobs_args_is_upcast(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3(TO_V3)
    info = job_info(queue, handle.id)
    assert info.args == {"name": "Ada"}
    assert current_args(info, registry) == {"name": "Ada", "locale": "en", "formal": False}


def test_the_view_shows_args_as_stored_when_they_cannot_be_upcast(queue: JobQueue) -> None:
    handle = _old_greet().perform_later(name="Ada")
    _greet_v3({})
    assert current_args(job_info(queue, handle.id), registry) == {"name": "Ada"}


@pytest.mark.parametrize("upcasters", [{3: TO_V2[1]}, {0: TO_V2[1]}])
def test_an_upcaster_key_not_below_the_version_is_refused_naming_the_job(upcasters: dict[Any, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"^va_bad: upcasters keys are the older versions they upcast from"):
        job("va_bad", schema=V3, version=3, upcasters=upcasters)


def test_an_upcaster_that_is_not_a_function_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"^va_bad: upcasters must map an older version"):
        job("va_bad", schema=V3, version=3, upcasters={1: "add locale"})


@pytest.mark.parametrize("key", ["1", True, 1.0])
def test_an_upcaster_key_that_is_not_a_whole_number_is_refused(key: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"^va_bad: upcasters must map an older version \(int\)"):
        job("va_bad", schema=V3, version=3, upcasters={key: TO_V2[1]})


def test_the_error_is_never_retried() -> None:
    from activejob.retry import decide

    error = ArgumentsVersionError("j", "no path", stored=1, version=3)
    assert decide(error, attempt=1, max_retries=5, backoff=lambda _a: 0).retry is False


def test_the_dashboard_shows_a_stored_jobs_args_upcast(queue: JobQueue) -> None:
    from activejob.web.core import job_json

    handle = _old_greet().perform_later(name="Ada")
    _greet_v3(TO_V3)
    assert job_json(job_info(queue, handle.id))["args"] == {"name": "Ada", "locale": "en", "formal": False}
