"""Backoff policies: pure functions from the attempt that failed to the seconds to wait."""

from __future__ import annotations

import random

import pytest

from activejob.backoff import Exponential, Fixed, Linear, resolve

pytestmark = pytest.mark.timeout(5)


@pytest.fixture
def widest_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """random.uniform(a, b) always answers b: the largest delay jitter can add."""
    monkeypatch.setattr(random, "uniform", lambda _a, b: b)


@pytest.fixture
def narrowest_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda a, _b: a)


def test_exponential_doubles_from_base() -> None:
    policy = Exponential(base=3)
    assert [policy(n) for n in (1, 2, 3, 4)] == [3.0, 6.0, 12.0, 24.0]


def test_exponential_stops_at_its_cap() -> None:
    assert Exponential(base=1, cap=10)(5) == 10.0


def test_exponential_of_a_huge_attempt_is_the_cap_not_an_overflow() -> None:
    assert Exponential(base=1, cap=60)(100_000) == 60.0


def test_linear_grows_by_base_each_attempt() -> None:
    policy = Linear(base=5)
    assert [policy(n) for n in (1, 2, 3)] == [5.0, 10.0, 15.0]


def test_linear_stops_at_its_cap() -> None:
    assert Linear(base=5, cap=12)(3) == 12.0


def test_fixed_is_the_same_for_every_attempt() -> None:
    policy = Fixed(base=10)
    assert {policy(n) for n in (1, 2, 50)} == {10.0}


def test_fixed_is_capped_too() -> None:
    assert Fixed(base=10, cap=4)(1) == 4.0


@pytest.mark.parametrize("policy", [Exponential(base=2), Linear(base=2), Fixed(base=2)])
def test_an_attempt_below_one_counts_as_the_first(policy: Exponential) -> None:
    assert policy(0) == policy(-3) == policy(1)


def test_the_default_cap_is_an_hour() -> None:
    assert Exponential()(64) == 3600.0


def test_no_jitter_gives_the_same_delay_every_time() -> None:
    policy = Exponential(base=2)
    assert {policy(3) for _ in range(50)} == {8.0}


def test_jitter_adds_at_most_its_fraction_of_the_delay(widest_jitter: None) -> None:
    assert Linear(base=10, jitter=0.5)(2) == 30.0


def test_jitter_never_shortens_the_delay(narrowest_jitter: None) -> None:
    assert Linear(base=10, jitter=0.5)(2) == 20.0


def test_jitter_is_a_fraction_of_the_capped_delay(widest_jitter: None) -> None:
    # Jitter spreads retries even for jobs already at the cap, so it may exceed the cap by its fraction.
    assert Exponential(base=1, cap=10, jitter=0.2)(20) == 12.0


def test_jittered_delays_spread_within_their_bounds() -> None:
    policy = Fixed(base=100, jitter=0.25)
    delays = [policy(1) for _ in range(200)]
    assert all(100.0 <= d <= 125.0 for d in delays)
    assert len(set(delays)) > 1


def test_policies_are_values() -> None:
    assert Exponential(base=2, cap=60) == Exponential(base=2, cap=60)
    assert hash(Linear(base=1)) == hash(Linear(base=1))


@pytest.mark.parametrize(("name", "policy"), [("exponential", Exponential), ("linear", Linear), ("fixed", Fixed)])
def test_resolve_builds_a_policy_by_name(name: str, policy: type) -> None:
    assert resolve(name, base=2, cap=30, jitter=0.1) == policy(base=2, cap=30, jitter=0.1)


def test_resolve_takes_a_number_as_fixed_seconds() -> None:
    assert resolve(7)(3) == 7.0


def test_resolve_lets_a_fixed_number_exceed_the_default_cap() -> None:
    assert resolve(7200)(1) == 7200.0


def test_resolve_accepts_zero_seconds() -> None:
    assert resolve(0)(1) == 0.0


def test_resolve_returns_a_callable_as_it_is() -> None:
    def custom(attempt: int) -> float:
        return attempt * 0.5

    assert resolve(custom) is custom


def test_resolve_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError, match="zero or more seconds"):
        resolve(-1)


@pytest.mark.parametrize("flag", [True, False])
def test_resolve_refuses_a_bool(flag: bool) -> None:
    with pytest.raises(ValueError, match="not True|not False"):
        resolve(flag)


def test_resolve_refuses_an_unknown_name_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backoff 'exponentail'") as refused:
        resolve("exponentail")
    assert "'exponential', 'linear', 'fixed'" in str(refused.value)


@pytest.mark.parametrize("options", [{"base": -1}, {"cap": -1}, {"jitter": -0.1}, {"jitter": 1.5}])
def test_resolve_refuses_out_of_range_parameters(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="base and cap must be >= 0 and jitter between 0 and 1"):
        resolve("linear", **options)
