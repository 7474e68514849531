"""Process-wide middleware, `configure(middleware=[...])`: around every enqueue and every
attempt, able to refuse an enqueue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import activejob
from activejob import BaseJob, ConfigurationError, EnqueueRefused, JobQueue, job, middleware
from activejob.middleware import Enqueue, Perform
from activejob.testing import inline


class N(BaseModel):
    n: int = 0


@pytest.fixture(autouse=True)
def _no_middleware_after() -> Iterator[None]:
    yield
    middleware.install([])


class Recording:
    """Notes every hook it runs, under its own name."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def enqueue(self, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
        self.seen.append(f"{self.name} enqueue {enqueue.name}")
        return proceed()

    def perform(self, perform: Perform, proceed: Callable[[], Any]) -> Any:
        self.seen.append(f"{self.name} perform {perform.name} #{perform.job_id} attempt {perform.attempt}")
        return proceed()

    async def aperform(self, perform: Perform, proceed: Callable[[], Awaitable[Any]]) -> Any:
        self.seen.append(f"{self.name} aperform {perform.name}")
        return await proceed()


class Closed:
    def enqueue(self, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
        raise EnqueueRefused("maintenance until 22:00")


def _jobs() -> tuple[type[BaseJob[N]], type[BaseJob[N]]]:
    @job("mw_sync", schema=N)
    class Sync(BaseJob[N]):
        def perform(self, args: N) -> int:
            return args.n

    @job("mw_async", schema=N)
    class Async(BaseJob[N]):
        async def perform(self, args: N) -> int:
            return args.n

    return Sync, Async


def test_middleware_wraps_every_enqueue_and_every_attempt_in_a_worker(db_url: str) -> None:
    seen: list[str] = []
    queue = activejob.configure(db_url, poll_interval=0.05, middleware=[Recording("m", seen)])
    try:
        sync, async_ = _jobs()
        first = sync.perform_later(n=1)
        async_.perform_later(n=2)
        queue.run_until_idle()
    finally:
        JobQueue.reset()
    assert seen[:2] == ["m enqueue mw_sync", "m enqueue mw_async"]
    assert sorted(seen[2:]) == ["m aperform mw_async", f"m perform mw_sync #{first.id} attempt 1"]


def test_the_first_middleware_is_the_outermost() -> None:
    seen: list[str] = []
    middleware.install([Recording("outer", seen), Recording("inner", seen)])
    sync, _ = _jobs()
    with inline():
        sync.perform_later()
    assert seen == ["outer enqueue mw_sync", "inner enqueue mw_sync", "outer perform mw_sync #1 attempt 1",
                    "inner perform mw_sync #1 attempt 1"]


def test_a_middleware_refusing_an_enqueue_raises_naming_the_job_and_writes_nothing(queue: JobQueue) -> None:
    middleware.install([Closed()])
    sync, _ = _jobs()
    with pytest.raises(EnqueueRefused) as refused:
        sync.perform_later()
    assert str(refused.value) == "mw_sync: enqueue refused by Closed: maintenance until 22:00; nothing was written"
    assert (refused.value.job, refused.value.by, refused.value.reason) == ("mw_sync", "Closed",
                                                                          "maintenance until 22:00")
    assert queue.list_jobs() == []


def test_a_sync_enqueue_hook_also_refuses_the_async_verbs(queue: JobQueue) -> None:
    middleware.install([Closed()])
    sync, _ = _jobs()
    with pytest.raises(EnqueueRefused, match="^mw_sync: enqueue refused by Closed"):
        anyio.run(sync.aperform_later)
    assert queue.list_jobs() == []


def test_a_middleware_that_does_not_proceed_refuses_the_enqueue(queue: JobQueue) -> None:
    class Forgetful:
        def enqueue(self, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            return []

    middleware.install([Forgetful()])
    sync, _ = _jobs()
    with pytest.raises(EnqueueRefused, match=r"^mw_sync: enqueue refused by Forgetful: its enqueue hook returned "
                                             r"without calling proceed\(\)"):
        sync.perform_all_later([{"n": 1}, {"n": 2}])
    assert queue.list_jobs() == []


def test_a_perform_hook_that_does_not_proceed_completes_with_its_value() -> None:
    class Short:
        def perform(self, perform: Perform, proceed: Callable[[], Any]) -> Any:
            return "short-circuited"

    middleware.install([Short()])
    sync, _ = _jobs()
    with inline():
        assert sync.perform_later(n=5).result == "short-circuited"


def test_a_middleware_sees_the_jobs_meta_at_perform() -> None:
    metas: list[dict[str, Any]] = []

    class Stamp:
        def enqueue(self, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            enqueue.merge_meta(tenant="acme")
            return proceed()

        def perform(self, perform: Perform, proceed: Callable[[], Any]) -> Any:
            metas.append(perform.meta)
            return proceed()

    middleware.install([Stamp()])
    sync, _ = _jobs()
    with inline():
        sync.set(timeout=30).perform_later()
    assert metas == [{"timeout": 30.0, "tenant": "acme"}]


def test_configure_without_middleware_removes_it(db_url: str) -> None:
    seen: list[str] = []
    activejob.configure(db_url, middleware=[Recording("m", seen)])
    activejob.configure(db_url)
    try:
        _jobs()[0].perform_later()
    finally:
        JobQueue.reset()
    assert seen == []


def test_a_middleware_class_instead_of_an_instance_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"middleware takes instances, got the class Closed: write Closed\(\)"):
        activejob.Settings.build(database_url="sqlite:///x.db", middleware=[Closed])


def test_an_object_with_no_hook_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="middleware 'audit' has none of the hooks enqueue, aenqueue"):
        activejob.Settings.build(database_url="sqlite:///x.db", middleware=["audit"])


def test_an_aenqueue_hook_wraps_the_async_verbs_and_enqueue_the_sync_ones() -> None:
    seen: list[str] = []

    class Both:
        def enqueue(self, enqueue: Enqueue, proceed: Callable[[], list[Any]]) -> list[Any]:
            seen.append("sync")
            return proceed()

        async def aenqueue(self, enqueue: Enqueue, proceed: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
            seen.append("async")
            return await proceed()

    middleware.install([Both()])
    sync, _ = _jobs()
    with inline():
        sync.perform_later()
        anyio.run(sync.aperform_later)
    assert seen == ["sync", "async"]
