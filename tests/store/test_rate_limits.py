"""Rate limits in the claim: at most N starts in any window of the limit's length (sliding,
not fixed), per type, per rate key and per queue, with held-back jobs left pending."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from activejob.store import Outcome
from activejob.store.limits import GeneralClaim
from activejob.store.rates import RateLimits, rate_starts

from .contract import LEASE, NAME, NOW, Jobs, at, completed

TEN_S = timedelta(seconds=10)


def claim(jobs: Jobs, now: datetime = NOW, *, rates: RateLimits, limit: int = 10,
          names: tuple[str, ...] = (NAME, "free"), **more: Any) -> GeneralClaim:
    return jobs.store.claim_general(worker_id="w1", names=list(names), queues=None, limit=limit, now=now,
                                    lease=LEASE, rates=rates, **more)


def ids(jobs: Jobs, now: datetime = NOW, *, rates: RateLimits, **more: Any) -> list[int]:
    got = claim(jobs, now, rates=rates, **more)
    assert [e.job_id for e in got.started] == [c.id for c in got.claimed]
    return [c.id for c in got.claimed]


def per_type(count: int, window: timedelta = TEN_S) -> RateLimits:
    return RateLimits(types={NAME: (count, window)})


def finish_all(jobs: Jobs, claimed: GeneralClaim) -> None:
    jobs.store.finish([completed(c) for c in claimed.claimed], NOW)


def test_a_type_starts_no_more_than_its_limit_in_a_window(jobs: Jobs) -> None:
    added = jobs.add(5)
    assert ids(jobs, rates=per_type(3)) == added[:3]
    assert ids(jobs, at(9.999), rates=per_type(3)) == []
    assert [jobs.status(i) for i in added[3:]] == ["pending", "pending"]


def test_starts_leave_the_window_once_it_has_passed_them(jobs: Jobs) -> None:
    added = jobs.add(5)
    ids(jobs, rates=per_type(3))
    assert ids(jobs, at(10), rates=per_type(3)) == added[3:]


def test_the_window_slides_rather_than_resetting(jobs: Jobs) -> None:
    added = jobs.add(4)
    limit = per_type(2)
    assert ids(jobs, NOW, rates=limit, limit=1) == added[:1]
    assert ids(jobs, at(6), rates=limit) == added[1:2]
    # A fixed window starting at 10 s would allow two more; only the start at 0 s has left.
    assert ids(jobs, at(10), rates=limit) == added[2:3]
    assert ids(jobs, at(15.9), rates=limit) == []
    assert ids(jobs, at(16), rates=limit) == added[3:]


def test_no_window_of_the_limits_length_ever_holds_more_than_the_limit(jobs: Jobs) -> None:
    jobs.add(40)
    limit = per_type(3, timedelta(seconds=2))
    starts: list[datetime] = []
    for step in range(40):  # a look every 0.3 s for 12 s, each taking all the limit allows
        now = at(step * 0.3)
        starts += [now] * len(ids(jobs, now, rates=limit))
    for first in starts:
        assert sum(1 for s in starts if first <= s < first + timedelta(seconds=2)) <= 3
    assert len(starts) == 18  # and the limit is used: 3 in each 2 s of the 12


def test_each_rate_key_has_a_limit_of_its_own(jobs: Jobs) -> None:
    a = jobs.add(3, rate_key="a")
    b = jobs.add(3, rate_key="b")
    limit = RateLimits(types={NAME: (2, TEN_S)}, per_key=frozenset({NAME}))
    assert ids(jobs, rates=limit) == [*a[:2], *b[:2]]
    assert ids(jobs, at(1), rates=limit) == []


def test_a_full_rate_key_does_not_hide_the_others(jobs: Jobs) -> None:
    a = jobs.add(8, rate_key="a", priority=5)
    b = jobs.add(1, rate_key="b")
    limit = RateLimits(types={NAME: (1, TEN_S)}, per_key=frozenset({NAME}))
    assert ids(jobs, rates=limit, limit=1) == a[:1]
    assert ids(jobs, at(1), rates=limit, limit=1) == b


def test_a_queue_limit_counts_the_starts_of_every_type_in_the_queue(jobs: Jobs) -> None:
    mail = [*jobs.add(2, queue="mail"), *jobs.add(2, name="free", queue="mail")]
    other = jobs.add(2, name="free", queue="default")
    limit = RateLimits(queues={"mail": (3, TEN_S)})
    assert ids(jobs, rates=limit) == [*mail[:3], *other]
    assert ids(jobs, at(5), rates=limit) == []
    assert ids(jobs, at(10), rates=limit) == mail[3:]


def test_a_job_under_a_type_and_a_queue_limit_needs_room_in_both(jobs: Jobs) -> None:
    first = jobs.add(name="free", queue="mail")
    mine = jobs.add(2, queue="mail")
    limit = RateLimits(types={NAME: (5, TEN_S)}, queues={"mail": (2, TEN_S)})
    assert ids(jobs, rates=limit) == [*first, mine[0]]
    assert jobs.status(mine[1]) == "pending"


def test_a_held_back_type_leaves_the_other_types_to_be_claimed(jobs: Jobs) -> None:
    limited = jobs.add(5, priority=9)
    free = jobs.add(2, name="free")
    assert ids(jobs, rates=per_type(1), limit=3) == [limited[0], *free]


def test_a_retry_counts_as_a_start(jobs: Jobs) -> None:
    job_id = jobs.add()[0]
    first = claim(jobs, rates=per_type(1))
    jobs.store.finish([Outcome(job_id, first.claimed[0].lease_token, "pending", "retrying", error="E: again",
                               run_at=at(1))], NOW)
    assert ids(jobs, at(1), rates=per_type(1)) == []
    assert ids(jobs, at(10), rates=per_type(1)) == [job_id]


def test_a_claim_says_when_the_window_frees_for_held_back_jobs(jobs: Jobs) -> None:
    jobs.add(3)
    assert claim(jobs, rates=per_type(2)).frees_at == at(10)
    assert claim(jobs, at(4), rates=per_type(2)).frees_at == at(10)


def test_a_claim_says_nothing_when_no_due_job_is_held_back(jobs: Jobs) -> None:
    jobs.add(2)
    jobs.add(run_at=at(60))
    assert claim(jobs, rates=per_type(2)).frees_at is None


def test_a_concurrency_limit_and_a_rate_limit_hold_together(jobs: Jobs) -> None:
    added = jobs.add(4)
    got = claim(jobs, rates=per_type(3), limits={NAME: 1})
    assert [c.id for c in got.claimed] == added[:1]
    finish_all(jobs, got)
    assert ids(jobs, at(1), rates=per_type(3), limits={NAME: 1}) == added[1:2]


def start_rows(jobs: Jobs) -> dict[str, int]:
    with jobs.store.read() as c:
        return dict(c.execute(select(rate_starts.c.key, func.count()).group_by(rate_starts.c.key)).all())


def test_each_start_is_counted_under_every_key_it_falls_under(jobs: Jobs) -> None:
    jobs.add(rate_key="42", queue="mail")
    ids(jobs, rates=RateLimits(types={NAME: (5, TEN_S)}, per_key=frozenset({NAME}), queues={"mail": (5, TEN_S)}))
    assert start_rows(jobs) == {f"type:{NAME}:42": 1, "queue:mail": 1}


def test_a_claim_drops_the_starts_its_keys_no_longer_count(jobs: Jobs) -> None:
    jobs.add(2)
    ids(jobs, rates=per_type(1))
    ids(jobs, at(10), rates=per_type(1))
    assert start_rows(jobs) == {f"type:{NAME}": 1}


def test_pruning_drops_the_starts_of_keys_no_claim_touches_any_more(jobs: Jobs) -> None:
    jobs.add(rate_key="old")
    limit = RateLimits(types={NAME: (1, TEN_S)}, per_key=frozenset({NAME}))
    ids(jobs, rates=limit)
    assert jobs.store.prune_rate_starts(limit, at(9)) == 0
    assert jobs.store.prune_rate_starts(limit, at(10)) == 1
    assert start_rows(jobs) == {}


def test_a_rate_key_too_long_for_the_column_is_counted_under_its_digest(jobs: Jobs) -> None:
    long_key = "k" * 255
    jobs.add(2, rate_key=long_key, name="n" * 200)
    limit = RateLimits(types={"n" * 200: (1, TEN_S)}, per_key=frozenset({"n" * 200}))
    assert len(ids(jobs, rates=limit, names=("n" * 200,))) == 1
    assert ids(jobs, at(1), rates=limit, names=("n" * 200,)) == []
    assert all(len(key) <= 255 for key in start_rows(jobs))
