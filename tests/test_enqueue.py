"""Enqueue verbs: perform_later, perform_at, perform_in, set(...), bulk, async twins,
and joining the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from freezegun import freeze_time
from pydantic import BaseModel
from sqlmodel import Field as SQLField
from sqlmodel import Session, SQLModel, create_engine

from activejob import BaseJob, JobHandle, JobQueue, job


class Args(BaseModel):
    n: int


@job("enq_square", schema=Args, queue="math", priority=3)
class Square(BaseJob[Args]):
    def perform(self, args: Args) -> int:
        return args.n * args.n


def test_perform_later_returns_a_handle_with_the_id(queue: JobQueue) -> None:
    handle = Square.perform_later(n=3)
    assert isinstance(handle, JobHandle)
    info = queue.get_job(handle.id)
    assert info is not None
    assert (info.name, info.status, info.queue, info.priority, info.attempts) == ("enq_square", "pending", "math", 3, 0)


def test_the_handle_follows_the_job_to_its_result(queue: JobQueue) -> None:
    handle = Square.perform_later(n=4)
    assert handle.status == "pending"
    queue.run_until_idle()
    assert handle.status == "completed"
    assert handle.result == 16
    assert handle.wait(timeout=1).result == 16


def test_perform_in_schedules_after_the_delay(queue: JobQueue) -> None:
    with freeze_time("2030-01-01 12:00:00"):
        handle = Square.perform_in(timedelta(minutes=5), n=2)
        info = queue.get_job(handle.id)
        assert info is not None and info.run_at == datetime(2030, 1, 1, 12, 5, tzinfo=UTC)


def test_perform_at_takes_a_naive_datetime_as_utc(queue: JobQueue) -> None:
    handle = Square.perform_at(datetime(2031, 6, 1, 9, 30), n=2)
    info = queue.get_job(handle.id)
    assert info is not None and info.run_at == datetime(2031, 6, 1, 9, 30, tzinfo=UTC)


def test_perform_at_converts_an_aware_datetime_to_utc(queue: JobQueue) -> None:
    from zoneinfo import ZoneInfo

    handle = Square.perform_at(datetime(2031, 6, 1, 11, 30, tzinfo=ZoneInfo("Europe/Paris")), n=2)
    info = queue.get_job(handle.id)
    assert info is not None and info.run_at == datetime(2031, 6, 1, 9, 30, tzinfo=UTC)


def test_a_scheduled_job_waits_until_its_time(queue: JobQueue) -> None:
    with freeze_time("2030-01-01 12:00:00") as frozen:
        handle = Square.perform_at(datetime(2030, 1, 2, 2, 0, tzinfo=UTC), n=5)
        queue.run_until_idle()
        assert handle.status == "pending"
        frozen.move_to("2030-01-02 01:59:59")
        queue.run_until_idle()
        assert handle.status == "pending"
        frozen.move_to("2030-01-02 02:00:00")
        queue.run_until_idle()
        assert handle.status == "completed"


def test_set_overrides_queue_priority_and_owner(queue: JobQueue) -> None:
    parent = Square.perform_later(n=1)
    handle = Square.set(queue="urgent", priority=9, owner="user-7", parent=parent).perform_later(n=2)
    info = queue.get_job(handle.id)
    assert info is not None
    assert (info.queue, info.priority, info.owner, info.parent_id) == ("urgent", 9, "user-7", parent.id)


def test_set_wait_and_wait_until(queue: JobQueue) -> None:
    with freeze_time("2030-01-01 00:00:00"):
        waited = Square.set(wait=60).perform_later(n=1)
        until = Square.set(wait_until=datetime(2030, 3, 1)).perform_later(n=1)
        assert queue.get_job(waited.id).run_at == datetime(2030, 1, 1, 0, 1, tzinfo=UTC)  # type: ignore[union-attr]
        assert queue.get_job(until.id).run_at == datetime(2030, 3, 1, tzinfo=UTC)  # type: ignore[union-attr]


def test_set_refuses_unknown_options() -> None:
    from activejob import ConfigurationError

    with pytest.raises(ConfigurationError, match="enq_square: unknown option"):
        Square.set(queeu="x")


def test_higher_priority_runs_first(queue: JobQueue) -> None:
    order: list[int] = []

    @job("enq_ordered", schema=Args)
    class Ordered(BaseJob[Args]):
        def perform(self, args: Args) -> None:
            order.append(args.n)

    queue.settings.concurrency = 1
    Ordered.set(priority=0).perform_later(n=1)
    Ordered.set(priority=5).perform_later(n=2)
    Ordered.set(priority=0).perform_later(n=3)
    queue.run_until_idle()
    assert order == [2, 1, 3]


def test_bulk_enqueue_writes_all_in_one_go(queue: JobQueue) -> None:
    handles = Square.perform_all_later([{"n": i} for i in range(2000)] + [Args(n=-1)])
    assert len(handles) == 2001
    assert len({h.id for h in handles}) == 2001
    assert queue.stats()["pending"] == 2001
    assert queue.get_job(handles[-1].id).args == {"n": -1}  # type: ignore[union-attr]


def test_bulk_enqueue_of_nothing_writes_nothing(queue: JobQueue) -> None:
    assert Square.perform_all_later([]) == []


def test_async_twins_enqueue_without_blocking(queue: JobQueue) -> None:
    async def main() -> list[JobHandle]:
        a = await Square.aperform_later(n=1)
        b = await Square.aperform_in(10, n=2)
        c = await Square.aperform_at(datetime(2040, 1, 1), n=3)
        d = await Square.set(queue="x").aperform_later(n=4)
        many = await Square.aperform_all_later([{"n": 5}, {"n": 6}])
        return [a, b, c, d, *many]

    handles = anyio.run(main)
    assert [queue.get_job(h.id).args["n"] for h in handles] == [1, 2, 3, 4, 5, 6]  # type: ignore[union-attr]


def test_async_perform_now_awaits_the_result() -> None:
    assert anyio.run(lambda: Square.aperform_now(n=7)) == 49


class Order(SQLModel, table=True):
    __tablename__ = "test_orders"
    id: int | None = SQLField(default=None, primary_key=True)
    item: str


def test_enqueue_commits_with_the_callers_transaction(queue: JobQueue) -> None:
    engine = create_engine(queue.settings.database_url)
    Order.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.add(Order(item="book"))
        handle = Square.set(session=session).perform_later(n=8)
        session.commit()
    assert queue.get_job(handle.id) is not None
    engine.dispose()


def test_enqueue_rolls_back_with_the_callers_transaction(queue: JobQueue) -> None:
    engine = create_engine(queue.settings.database_url)
    Order.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.add(Order(item="book"))
        handle = Square.set(session=session).perform_later(n=8)
        session.rollback()
    assert queue.get_job(handle.id) is None
    assert queue.stats()["total"] == 0
    engine.dispose()


def _async_url(url: str) -> str:
    return url.replace("sqlite:///", "sqlite+aiosqlite:///")


def test_enqueue_joins_an_async_session(queue: JobQueue) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlmodel.ext.asyncio.session import AsyncSession

    async def main() -> tuple[int, int]:
        engine = create_async_engine(_async_url(queue.settings.database_url))
        async with AsyncSession(engine) as session:
            kept = await Square.set(session=session).aperform_later(n=2)
            await session.commit()
        async with AsyncSession(engine) as session:
            dropped = await Square.set(session=session).aperform_later(n=3)
            await session.rollback()
        await engine.dispose()
        return kept.id, dropped.id

    kept, dropped = anyio.run(main)
    assert queue.get_job(kept) is not None
    assert queue.get_job(dropped) is None


def test_a_sync_call_with_an_async_session_says_what_to_do(queue: JobQueue) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlmodel.ext.asyncio.session import AsyncSession

    from activejob import ConfigurationError

    engine = create_async_engine(_async_url(queue.settings.database_url))
    with pytest.raises(ConfigurationError, match="aperform_later"):
        Square.set(session=AsyncSession(engine)).perform_later(n=1)
    anyio.run(engine.dispose)
