"""A job type with a concurrency limit, for the reads part of `--scale` only.

Kept out of bench/jobs.py on purpose: the workers the other parts start import that
module, and a worker that runs a limited type claims every job through the general path
(it counts what runs everywhere), so the plain no-op drains would measure that path.
"""

from __future__ import annotations

from pydantic import BaseModel

from activejob import BaseJob, job


class Account(BaseModel):
    account: int


@job("bench_account_sync", schema=Account, max_retries=0, concurrency_limit=1,
     concurrency_key=lambda args: f"account:{args.account}")
class AccountSync(BaseJob[Account]):
    """A no-op one at a time per account (`concurrency_key`): the reads part of `--scale`
    times the claim past a backlog of one account whose slot is taken."""

    def perform(self, args: Account) -> None:
        return None
