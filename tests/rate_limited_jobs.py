"""Rate-limited job types, for worker subprocesses (`--import tests.rate_limited_jobs`).

Kept out of the modules every test imports: a worker that knows a rate-limited type claims
through the general path, and the rest of the suite should exercise the fast one.
"""

from __future__ import annotations

from pydantic import BaseModel

from activejob import BaseJob, job


class Item(BaseModel):
    n: int
    key: str = ""


@job("rl_type", schema=Item, max_retries=0, rate_limit="4/s")
class PerType(BaseJob[Item]):
    async def perform(self, args: Item) -> None: ...


@job("rl_keyed", schema=Item, max_retries=0, rate_limit=(2, 1.0), rate_limit_key=lambda args: args.key)
class PerKey(BaseJob[Item]):
    async def perform(self, args: Item) -> None: ...


@job("rl_mail", schema=Item, max_retries=0, queue="mail")
class InMail(BaseJob[Item]):
    """No limit of its own: the workers run with --queue-rate-limit mail=3/s."""

    async def perform(self, args: Item) -> None: ...
