"""EventRelay: signals in a process that runs no jobs, once per process, gap handling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from runner_support import wait_for
from sqlalchemy import create_engine, text

from activejob import EventRelay, JobQueue, emit, signals
from activejob.records import EventRecord

from .conftest import ROOT
from .jobs import Quick


def test_signals_fire_for_events_written_by_another_process_once(queue: JobQueue, db_url: str) -> None:
    # The test database's ids restart for every test; forget which ids earlier tests wrote here.
    with emit._written_lock:
        emit._written.clear()
        emit._written_order.clear()
    relay = EventRelay(queue, poll_interval=0.2)
    got: list[tuple[str, int]] = []

    def on_enqueued(sender: Any, **event: Any) -> None:
        got.append((event["event"], event["job_id"]))

    signals.job_enqueued.connect(on_enqueued)
    relay.start()
    try:
        local = Quick.perform_later(value="here")  # sent by this process's queue, not again by the relay
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        code = ("import activejob; from tests.web.jobs import Quick; "
                f"activejob.configure({db_url!r}); print(Quick.perform_later(value='there').id)")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60, check=True)
        remote = int(out.stdout.strip())
        wait_for(lambda: ("enqueued", remote) in got, what="the other process's event as a signal here")
        wait_for(lambda: relay.cursor >= max(e.id for e in queue.events(remote)), what="the relay to catch up")
        assert got.count(("enqueued", local.id)) == 1
        assert got.count(("enqueued", remote)) == 1
    finally:
        signals.job_enqueued.disconnect(on_enqueued)
        relay.stop()
    assert not relay.running


def test_subscriptions_replay_by_job_and_owner(queue: JobQueue) -> None:
    a = Quick.set(owner="alice").perform_later(value=1)
    b = Quick.set(owner="bob").perform_later(value=2)
    queue.run_until_idle()
    relay = EventRelay(queue, emit_signals=False)

    async def main() -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        async with relay:
            for key, spec in (("alice", {"owner": "alice"}), ("job", {"job_id": b.id}), ("all", {})):
                async with relay.subscribe(since=0, **spec) as events:  # type: ignore[arg-type]
                    items = out.setdefault(key, [])
                    with anyio.fail_after(10):
                        async for item in events:
                            items.append((item.record.job_id, item.record.type))
                            assert item.cursor <= item.id
                            if len(items) == (6 if key == "all" else 3):
                                break
            assert relay.subscribers == 0
        return out

    out = anyio.run(main)
    assert out["alice"] == [(a.id, "enqueued"), (a.id, "started"), (a.id, "completed")]
    assert out["job"] == [(b.id, "enqueued"), (b.id, "started"), (b.id, "completed")]
    assert sorted(out["all"]) == sorted(out["alice"] + out["job"])


@dataclass
class FakeLog:
    """An event log whose rows become visible in any order, like concurrent commits."""

    url: str = "fake://"
    visible: dict[int, EventRecord] | None = None

    def __post_init__(self) -> None:
        self.visible = {}

    def commit(self, *ids: int) -> None:
        assert self.visible is not None
        for i in ids:
            self.visible[i] = EventRecord(id=i, job_id=1, type="log", name="web_quick", queue="default",
                                          owner=None, status="running", attempt=1,
                                          created_at=datetime.now(UTC), data={"message": str(i)})

    def events(self, *, after: int = 0, limit: int = 500, **_: Any) -> list[EventRecord]:
        assert self.visible is not None
        return [self.visible[i] for i in sorted(self.visible) if i > after][:limit]

    def events_by_id(self, ids: list[int]) -> list[EventRecord]:
        assert self.visible is not None
        return [self.visible[i] for i in sorted(ids) if i in self.visible]

    def last_event_id(self) -> int:
        assert self.visible is not None
        return max(self.visible, default=0)


def test_gaps_are_rechecked_then_given_up() -> None:
    log = FakeLog()
    relay = EventRelay(emit_signals=False, gap_timeout=0.3, start_at=0, watch=False)
    relay._store = log  # type: ignore[assignment]

    async def main() -> None:
        relay._cursor = relay._max_seen = 0
        sub = relay.subscribe()
        log.commit(1, 3)  # 2 is still in flight
        await relay.poll()
        assert relay.cursor == 1
        log.commit(2, 4)  # the late one arrives, and a new one
        await relay.poll()
        assert relay.cursor == 4
        log.commit(6)  # 5 never commits (rolled back)
        await relay.poll()
        assert relay.cursor == 4
        await anyio.sleep(0.35)
        await relay.poll()
        assert relay.cursor == 6
        got = []
        with anyio.fail_after(5):
            async for item in sub:
                got.append((item.id, item.cursor))
                if len(got) == 5:
                    break
        sub.close()
        # Delivered as seen; each cursor is a safe place to resume (never past a hole).
        assert got == [(1, 1), (3, 1), (2, 2), (4, 4), (6, 4)]

    anyio.run(main)


def test_postgres_commits_out_of_order_lose_nothing(queue: JobQueue, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL commits ids out of order")
    relay = EventRelay(queue, emit_signals=False, gap_timeout=30, poll_interval=0.1)
    seen: list[int] = []
    relay.start()
    engine = create_engine(db_url)
    try:
        sub = relay.subscribe()

        async def drain(n: int) -> None:
            with anyio.fail_after(15):
                async for item in sub:
                    seen.append(item.id)
                    if len(seen) >= n:
                        return

        with engine.connect() as slow:
            slow.begin()
            late = slow.execute(text(
                "INSERT INTO activejob_events (job_id, type, name, queue, status, attempt, created_at) "
                "VALUES (0, 'log', 'slow', 'default', 'running', 1, now()) RETURNING id")).scalar_one()
            fast = Quick.perform_later(value=1)  # a higher id, committed first
            anyio.run(drain, 1)
            assert seen[-1] > late and relay.cursor < late
            time.sleep(0.3)
            assert relay.cursor < late  # still waiting for the one in flight
            slow.commit()
        anyio.run(drain, 2)
        assert late in seen and relay.cursor >= late
        assert fast.id
        sub.close()
    finally:
        relay.stop()
        engine.dispose()
