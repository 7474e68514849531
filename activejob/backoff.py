"""Retry delays: pure functions from an attempt number to seconds.

`attempt` is the attempt that just failed, starting at 1.

>>> Exponential(base=2, cap=60)(1), Exponential(base=2, cap=60)(3), Exponential(base=2, cap=60)(10)
(2.0, 8.0, 60.0)
>>> Linear(base=5)(3)
15.0
>>> Fixed(base=10)(7)
10.0
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

BackoffName = Literal["exponential", "linear", "fixed"]


class BackoffPolicy(Protocol):
    def __call__(self, attempt: int) -> float: ...


@dataclass(frozen=True)
class _Policy:
    base: float = 1.0
    cap: float = 3600.0
    jitter: float = 0.0
    """Up to this fraction of the delay is added at random, so retries of many jobs
    that failed together spread out instead of hitting the same service at once."""

    def raw(self, attempt: int) -> float:
        raise NotImplementedError

    def __call__(self, attempt: int) -> float:
        delay = float(min(self.raw(max(attempt, 1)), self.cap))  # seconds as a float, whatever base and cap were
        if self.jitter:
            delay += delay * random.uniform(0, self.jitter)
        return delay


@dataclass(frozen=True)
class Exponential(_Policy):
    """base, 2*base, 4*base, ... capped at `cap` seconds."""

    def raw(self, attempt: int) -> float:
        return self.base * float(2 ** min(attempt - 1, 64))


@dataclass(frozen=True)
class Linear(_Policy):
    """base, 2*base, 3*base, ... capped at `cap` seconds."""

    def raw(self, attempt: int) -> float:
        return self.base * attempt


@dataclass(frozen=True)
class Fixed(_Policy):
    """Always `base` seconds."""

    def raw(self, attempt: int) -> float:
        return self.base


_BY_NAME: dict[str, type[_Policy]] = {
    "exponential": Exponential,
    "linear": Linear,
    "fixed": Fixed,
}


def resolve(
    backoff: str | float | Callable[[int], float],
    *,
    base: float = 1.0,
    cap: float = 3600.0,
    jitter: float = 0.0,
) -> Callable[[int], float]:
    """Turn the `backoff=` option of `@job` into a policy.

    >>> resolve("linear", base=3)(2)
    6.0
    >>> resolve(7)(1)
    7.0
    """
    if callable(backoff):
        return backoff
    if isinstance(backoff, bool):
        raise ValueError(f"backoff must be a name, a number of seconds or a callable, not {backoff!r}")
    if isinstance(backoff, int | float):
        if backoff < 0:
            raise ValueError("a fixed backoff must be zero or more seconds")
        return Fixed(base=float(backoff), cap=max(cap, float(backoff)), jitter=jitter)
    try:
        policy = _BY_NAME[backoff]
    except (KeyError, TypeError):
        names = ", ".join(repr(n) for n in _BY_NAME)
        raise ValueError(f"unknown backoff {backoff!r}; use one of {names}, seconds or a callable") from None
    if base < 0 or cap < 0 or not 0 <= jitter <= 1:
        raise ValueError("backoff base and cap must be >= 0 and jitter between 0 and 1")
    return policy(base=base, cap=cap, jitter=jitter)
