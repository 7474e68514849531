"""@job registers BaseJob subclasses and refuses bad definitions clearly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from activejob import BaseJob, ConfigurationError, JobQueue, UnknownJobError, job, registry
from activejob.backoff import Exponential


class Args(BaseModel):
    n: int


def test_job_registers_the_class_under_its_name() -> None:
    @job("defn_double", schema=Args)
    class Double(BaseJob[Args]):
        def perform(self, args: Args) -> int:
            return args.n * 2

    assert registry["defn_double"] is Double
    assert "defn_double" in list(registry)
    assert Double.options.name == "defn_double"
    assert Double.options.schema is Args


def test_options_default_to_three_retries_exponential_backoff_default_queue() -> None:
    @job("defn_defaults", schema=Args)
    class Defaults(BaseJob[Args]):
        def perform(self, args: Args) -> None: ...

    opts = Defaults.options
    assert (opts.max_retries, opts.queue, opts.priority, opts.timeout) == (3, "default", 0, None)
    assert isinstance(opts.backoff, Exponential)


def test_async_and_sync_perform_are_both_accepted() -> None:
    @job("defn_async", schema=Args)
    class AsyncJob(BaseJob[Args]):
        async def perform(self, args: Args) -> int:
            return args.n

    @job("defn_sync", schema=Args)
    class SyncJob(BaseJob[Args]):
        def perform(self, args: Args) -> int:
            return args.n

    assert AsyncJob.perform_now(n=1) == 1
    assert SyncJob.perform_now(n=2) == 2


def test_a_second_class_cannot_take_a_registered_name() -> None:
    @job("defn_taken", schema=Args)
    class First(BaseJob[Args]):
        def perform(self, args: Args) -> None: ...

    with pytest.raises(ConfigurationError, match="defn_taken.*already registered"):
        @job("defn_taken", schema=Args)
        class Second(BaseJob[Args]):
            def perform(self, args: Args) -> None: ...


def test_schema_must_be_a_pydantic_model() -> None:
    with pytest.raises(ConfigurationError, match="bad_schema: schema must be a pydantic BaseModel"):
        job("bad_schema", schema=dict)  # type: ignore[arg-type]


def test_a_class_without_perform_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must define perform"):
        @job("defn_no_perform", schema=Args)
        class NoPerform(BaseJob[Args]):
            pass


def test_only_basejob_subclasses_can_be_decorated() -> None:
    with pytest.raises(ConfigurationError, match="decorates BaseJob subclasses"):
        @job("defn_plain", schema=Args)
        class Plain:
            def perform(self, args: Args) -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries must be a whole number"),
        ({"timeout": 0}, "timeout must be a number of seconds"),
        ({"backoff": "sometimes"}, "unknown backoff 'sometimes'"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"priority": "high"}, "priority must be an integer"),
        # The priority and max_retries columns are 32-bit; True and 1.9 would be stored as 1.
        ({"priority": 2**31}, "priority must be an integer from -2147483648 to 2147483647"),
        ({"priority": -(2**31) - 1}, "priority must be an integer from -2147483648 to 2147483647"),
        ({"priority": True}, "priority must be an integer from"),
        ({"priority": 1.9}, "priority must be an integer from"),
        ({"max_retries": 2**31}, "max_retries must be a whole number from 0 to 2147483647"),
        ({"queue": "   "}, "queue must be a non-empty string"),
        ({"queue": "q" * 201}, "queue is 201 characters long; its column holds at most 200"),
        ({"queue": "q\udcff"}, "queue contains a lone surrogate"),
        ({"queue": "q\x00"}, "queue contains a NUL character"),
        ({"retry_on": ["ValueError"]}, "retry_on takes exception classes"),
        ({"max_retires": 3}, r"unknown option\(s\) \['max_retires'\]"),
    ],
)
def test_bad_option_values_are_refused_with_the_job_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"bad_opts: {message}"):
        job("bad_opts", schema=Args, **options)  # type: ignore[arg-type]


def test_unknown_name_lookup_suggests_a_close_match() -> None:
    @job("defn_send_email", schema=Args)
    class SendEmail(BaseJob[Args]):
        def perform(self, args: Args) -> None: ...

    with pytest.raises(UnknownJobError, match="did you mean 'defn_send_email'"):
        registry["defn_send_emial"]


def test_in_asks_the_registry_whether_a_job_type_is_registered() -> None:
    @job("defn_known", schema=Args)
    class Known(BaseJob[Args]):
        def perform(self, args: Args) -> None: ...

    assert "defn_known" in registry
    assert "defn_unknown" not in registry


def test_a_job_takes_its_schema_from_basejobs_type_parameter_when_schema_is_not_given() -> None:
    @job("defn_typed")
    class Typed(BaseJob[Args]):
        def perform(self, args: Args) -> int:
            return args.n + 1

    assert Typed.options.schema is Args
    assert Typed.perform_now(n=2) == 3


def test_a_job_without_schema_takes_no_arguments() -> None:
    @job("defn_no_args")
    class Tick(BaseJob):  # type: ignore[type-arg]
        def perform(self, args: BaseModel) -> str:
            return "tick"

    assert Tick.perform_now() == "tick"


def test_a_job_without_arguments_may_define_perform_without_args(queue: JobQueue) -> None:
    @job("defn_bare_sync")
    class Sweep(BaseJob):  # type: ignore[type-arg]
        def perform(self) -> str:  # type: ignore[override]
            return "swept"

    @job("defn_bare_async")
    class Ping(BaseJob):  # type: ignore[type-arg]
        async def perform(self) -> str:  # type: ignore[override]
            return "pong"

    assert (Sweep.perform_now(), Ping.perform_now()) == ("swept", "pong")
    handles = [Sweep.perform_later(), Ping.perform_later()]
    queue.run_until_idle()
    assert [(h.info().status, h.result) for h in handles] == [("completed", "swept"), ("completed", "pong")]


def test_perform_without_args_is_refused_when_the_schema_has_fields() -> None:
    refused = (r"defn_bare_fields: Bare.perform\(self\) takes no arguments, but the job's schema Args "
               r"has field\(s\) n: define perform\(self, args: Args\)")
    with pytest.raises(ConfigurationError, match=refused):
        @job("defn_bare_fields", schema=Args)
        class Bare(BaseJob[Args]):
            def perform(self) -> None:  # type: ignore[override]
                pass


@pytest.mark.parametrize("source, needs", [
    ("def perform(self, n, m): pass", "m"),
    ("def perform(self, args, *, strict): pass", "strict"),
])
def test_perform_needing_more_than_the_args_is_refused_when_defined(source: str, needs: str) -> None:
    namespace: dict[str, object] = {}
    exec(source, namespace)
    with pytest.raises(ConfigurationError, match=rf"defn_spread: Spread.perform\(.*\) cannot be called as "
                                                 rf"perform\(self, args\) \(missing a required argument: '{needs}'\)"):
        job("defn_spread", schema=Args)(type("Spread", (BaseJob,), {"perform": namespace["perform"]}))


def test_a_perform_wrapped_by_a_decorator_taking_anything_is_accepted() -> None:
    def logged(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:  # no functools.wraps: its signature is (*args, **kwargs)
            return function(*args, **kwargs)
        return wrapper

    @job("defn_wrapped", schema=Args)
    class Wrapped(BaseJob[Args]):
        @logged
        def perform(self, args: Args) -> int:
            return args.n + 1

    assert Wrapped.perform_now(n=1) == 2


def test_display_options_are_kept_for_the_dashboard() -> None:
    @job("defn_report", schema=Args, label="Monthly report", phases=["load", "render"],
         resource_link=lambda a: f"/reports/{a['n']}")
    class Report(BaseJob[Args]):
        """Builds the monthly report."""

        def perform(self, args: Args) -> None: ...

    opts = Report.options
    assert opts.label == "Monthly report"
    assert opts.phases == ("load", "render")
    assert opts.resource_link is not None and opts.resource_link({"n": 3}) == "/reports/3"
    assert opts.describe()["description"] == "Builds the monthly report."


def test_every_bad_option_is_named_in_one_error() -> None:
    with pytest.raises(ConfigurationError) as refused:
        job("bad_many", schema=Args, max_retries=-1, timeout=0, queue="", max_retires=3)  # type: ignore[call-arg]
    assert str(refused.value) == (
        "bad_many: unknown option(s) ['max_retires'] for @job; "
        "max_retries must be a whole number from 0 to 2147483647, got -1; "
        "timeout must be a number of seconds > 0 (or None), got 0; queue must be a non-empty string, got ''")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": True}, "timeout must be a number of seconds > 0"),
        ({"timeout": float("nan")}, "timeout must be a number of seconds > 0"),
        ({"backoff_base": "10"}, "backoff_base must be a number of seconds, got '10'"),
        ({"phases": "load"}, "phases must be a list of phase names, got 'load'"),
        ({"label": 5}, r"label must be a string \(or None\), got 5"),
        ({"resource_link": "/reports"}, r"resource_link takes a function of the arguments \(or None\)"),
        ({"discard_on": KeyError(1)}, "discard_on takes exception classes, got KeyError"),
    ],
)
def test_options_of_the_wrong_kind_are_refused_when_defined(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=f"bad_kind: {message}"):
        job("bad_kind", schema=Args, **options)  # type: ignore[arg-type]


def test_durations_and_single_exception_classes_are_normalised() -> None:
    @job("defn_normalised", schema=Args, timeout=timedelta(minutes=2), retry_on=ConnectionError, priority=7)
    class Normalised(BaseJob[Args]):
        def perform(self, args: Args) -> None: ...

    opts = Normalised.options
    assert (opts.timeout, opts.retry_on, opts.discard_on, opts.priority) == (120.0, (ConnectionError,), (), 7)


def test_a_subclass_of_a_job_enqueues_under_its_own_name_and_options() -> None:
    from activejob.testing import capture_enqueued

    @job("defn_parent", schema=Args, queue="parents")
    class Parent(BaseJob[Args]):
        def perform(self, args: Args) -> int:
            return args.n

    @job("defn_child", schema=Args, queue="children")
    class Child(Parent):
        pass

    with capture_enqueued() as captured:
        Parent.perform_later(n=1)  # the parent first: what it keeps for its calls is its own
        Child.perform_later(n=2)
        Parent.set(priority=5).perform_later(n=3)
    assert [(j.name, j.queue, j.args) for j in captured] == [
        ("defn_parent", "parents", {"n": 1}),
        ("defn_child", "children", {"n": 2}),
        ("defn_parent", "parents", {"n": 3}),
    ]
