"""Job callbacks: `before_/around_/after_` `enqueue` and `perform`, in definition order,
inherited, sync or async, in a worker, `inline()` and `perform_now`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel
from runner_support import job_info

from activejob import (
    BaseJob,
    ConfigurationError,
    EnqueueRefused,
    JobQueue,
    after_enqueue,
    after_perform,
    around_enqueue,
    around_perform,
    before_enqueue,
    before_perform,
    job,
)
from activejob.middleware import Enqueue
from activejob.testing import inline

calls: list[str] = []


@pytest.fixture(autouse=True)
def _fresh_calls() -> Iterator[None]:
    calls.clear()
    yield
    calls.clear()


class N(BaseModel):
    n: int = 0


class Audited(BaseJob[N]):
    """A base class with hooks of its own: every job type derived from it has them first."""

    @before_perform
    def base_before(self, args: N) -> None:
        calls.append("base before")

    @after_perform
    def base_after(self, args: N) -> None:
        calls.append("base after")


def test_perform_hooks_run_in_definition_order_base_first_in_a_worker(queue: JobQueue) -> None:
    @job("cb_ordered", schema=N)
    class Ordered(Audited):
        @before_perform
        def first(self, args: N) -> None:
            calls.append("before 1")

        @around_perform
        def outer(self, args: N, proceed: Callable[[], Any]) -> Any:
            calls.append("around 1 in")
            result = proceed()
            calls.append("around 1 out")
            return result

        @around_perform
        def inner(self, args: N, proceed: Callable[[], Any]) -> Any:
            calls.append("around 2 in")
            return proceed()

        @before_perform
        def second(self, args: N) -> None:
            calls.append("before 2")

        @after_perform
        def done(self, args: N) -> None:
            calls.append("after")

        def perform(self, args: N) -> int:
            calls.append("perform")
            return args.n

    handle = Ordered.perform_later(n=7)
    queue.run_until_idle()
    assert job_info(queue, handle.id).result == 7
    assert calls == ["base before", "before 1", "before 2", "around 1 in", "around 2 in", "perform",
                     "around 1 out", "base after", "after"]


def test_an_async_around_perform_wraps_a_sync_perform(queue: JobQueue) -> None:
    @job("cb_async_around", schema=N)
    class Mixed(BaseJob[N]):
        @around_perform
        async def timed(self, args: N, proceed: Callable[[], Awaitable[Any]]) -> Any:
            await anyio.sleep(0)
            calls.append("around in")
            result = await proceed()
            calls.append("around out")
            return result * 2

        def perform(self, args: N) -> int:
            calls.append("perform")
            return args.n

    handle = Mixed.perform_later(n=21)
    queue.run_until_idle()
    assert job_info(queue, handle.id).result == 42
    assert calls == ["around in", "perform", "around out"]


def test_an_around_perform_that_does_not_proceed_skips_perform(queue: JobQueue) -> None:
    @job("cb_skip", schema=N)
    class Skipped(BaseJob[N]):
        @around_perform
        def gate(self, args: N, proceed: Callable[[], Any]) -> Any:
            return "skipped"

        def perform(self, args: N) -> None:
            calls.append("perform")

    handle = Skipped.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.result, calls) == ("completed", "skipped", [])


def test_before_perform_raising_fails_the_attempt_and_is_retried(queue: JobQueue) -> None:
    @job("cb_before_fails", schema=N, max_retries=1, backoff=0)
    class Guarded(BaseJob[N]):
        @before_perform
        def check(self, args: N) -> None:
            if self.attempt == 1:
                raise LookupError("not yet")

        def perform(self, args: N) -> int:
            return self.attempt

    handle = Guarded.perform_later()
    queue.run_until_idle()
    info = job_info(queue, handle.id)
    assert (info.status, info.result, info.attempts) == ("completed", 2, 2)


def test_after_perform_does_not_run_when_perform_raises() -> None:
    @job("cb_after_skipped", schema=N, max_retries=0)
    class Failing(BaseJob[N]):
        @after_perform
        def done(self, args: N) -> None:
            calls.append("after")

        def perform(self, args: N) -> None:
            raise ValueError("no")

    with inline():
        handle = Failing.perform_later()
    assert (handle.status, calls) == ("failed", [])


def test_a_subclass_redefining_a_hook_replaces_it_and_without_the_decorator_removes_it() -> None:
    class Quiet(Audited):
        def base_before(self, args: N) -> None:  # no longer a hook
            pass

        @after_perform
        def base_after(self, args: N) -> None:
            calls.append("quiet after")

    @job("cb_quiet", schema=N)
    class Job(Quiet):
        def perform(self, args: N) -> None:
            calls.append("perform")

    Job.perform_now()
    assert calls == ["perform", "quiet after"]


def test_async_perform_hooks_run_under_perform_now_and_inline() -> None:
    @job("cb_async_job", schema=N)
    class AsyncJob(BaseJob[N]):
        @before_perform
        async def warm(self, args: N) -> None:
            calls.append("before")

        async def perform(self, args: N) -> int:
            return args.n

    assert AsyncJob.perform_now(n=3) == 3
    with inline():
        assert AsyncJob.perform_later(n=4).result == 4
    assert calls == ["before", "before"]


def test_a_sync_around_perform_on_an_async_job_is_refused_at_definition() -> None:
    with pytest.raises(ConfigurationError, match="cb_bad: around_perform hook 'timed' is a plain def"):
        @job("cb_bad", schema=N)
        class Bad(BaseJob[N]):
            @around_perform
            def timed(self, args: N, proceed: Callable[[], Any]) -> Any:
                return proceed()

            async def perform(self, args: N) -> None: ...


# -- enqueue ------------------------------------------------------------------------------


def _enqueue_hooked(name: str) -> type[BaseJob[N]]:
    @job(name, schema=N)
    class Hooked(BaseJob[N]):
        @before_enqueue
        def stamp(cls, enqueue: Enqueue) -> None:
            calls.append(f"before {[a['n'] for a in enqueue.args]}")
            enqueue.merge_meta(source="test")

        @around_enqueue
        def around(cls, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            calls.append("around in")
            handles = proceed()
            calls.append(f"around out {len(handles)}")
            return handles

        @after_enqueue
        def done(cls, enqueue: Enqueue) -> None:
            calls.append(f"after {len(enqueue.handles or [])}")

        def perform(self, args: N) -> None: ...

    return Hooked


def test_enqueue_hooks_run_around_perform_later(queue: JobQueue) -> None:
    handle = _enqueue_hooked("cb_enqueue").perform_later(n=1)
    assert calls == ["before [1]", "around in", "around out 1", "after 1"]
    assert job_info(queue, handle.id).meta == {"source": "test"}


def test_perform_all_later_runs_each_enqueue_hook_once_for_the_whole_list(queue: JobQueue) -> None:
    handles = _enqueue_hooked("cb_bulk").perform_all_later([{"n": 1}, {"n": 2}, {"n": 3}])
    assert calls == ["before [1, 2, 3]", "around in", "around out 3", "after 3"]
    assert [job_info(queue, h.id).meta for h in handles] == [{"source": "test"}] * 3


def test_async_enqueue_hooks_run_around_aperform_later(queue: JobQueue) -> None:
    @job("cb_aenqueue", schema=N)
    class Hooked(BaseJob[N]):
        @before_enqueue
        async def check(cls, enqueue: Enqueue) -> None:
            calls.append("async before")

        @around_enqueue
        def around(cls, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            calls.append("sync around")
            return proceed()

        def perform(self, args: N) -> None: ...

    handle = anyio.run(Hooked.aperform_later)
    assert calls == ["async before", "sync around"]
    assert job_info(queue, handle.id).status == "pending"


def test_an_async_enqueue_hook_needs_the_async_verbs(queue: JobQueue) -> None:
    @job("cb_async_only", schema=N)
    class Hooked(BaseJob[N]):
        @before_enqueue
        async def check(cls, enqueue: Enqueue) -> None: ...

        def perform(self, args: N) -> None: ...

    with pytest.raises(ConfigurationError, match="cb_async_only: the enqueue hook 'check' is async def"):
        Hooked.perform_later()
    assert queue.list_jobs() == []


def test_an_around_enqueue_that_does_not_proceed_refuses_and_writes_nothing(queue: JobQueue) -> None:
    @job("cb_refused", schema=N)
    class Refused(BaseJob[N]):
        @around_enqueue
        def gate(cls, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            return []

        def perform(self, args: N) -> None: ...

    with pytest.raises(EnqueueRefused, match=r"^cb_refused: enqueue refused by around_enqueue hook 'gate': it "
                                             r"returned without calling proceed\(\); nothing was written$"):
        Refused.perform_later()
    assert queue.list_jobs() == []


def test_before_enqueue_refuses_with_its_own_reason(queue: JobQueue) -> None:
    @job("cb_closed", schema=N)
    class Closed(BaseJob[N]):
        @before_enqueue
        def closed(cls, enqueue: Enqueue) -> None:
            raise EnqueueRefused("the shop is closed")

        def perform(self, args: N) -> None: ...

    with pytest.raises(EnqueueRefused) as refused:
        Closed.perform_later()
    assert str(refused.value) == ("cb_closed: enqueue refused by before_enqueue hook 'closed': the shop is closed; "
                                  "nothing was written")
    assert queue.list_jobs() == []


def test_inline_runs_enqueue_and_perform_hooks() -> None:
    hooked = _enqueue_hooked("cb_inline")
    with inline():
        assert hooked.perform_later(n=5).status == "completed"
    assert calls == ["before [5]", "around in", "around out 1", "after 1"]
