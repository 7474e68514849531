"""The jobs the benchmark runs: no-ops, so what is measured is the queue itself."""

from __future__ import annotations

from pydantic import BaseModel

from activejob import BaseJob, NoArgs, job


@job("bench_noop", schema=NoArgs, max_retries=0)
class Noop(BaseJob[NoArgs]):
    async def perform(self, args: NoArgs) -> None:
        return None


@job("bench_noop_sync", schema=NoArgs, max_retries=0)
class SyncNoop(BaseJob[NoArgs]):
    """The same no-op as a plain `def perform` (run on a worker thread), as the peers' jobs are."""

    def perform(self, args: NoArgs) -> None:
        return None


class Account(BaseModel):
    account: int


@job("bench_account_sync", schema=Account, max_retries=0, concurrency_limit=1,
     concurrency_key=lambda args: f"account:{args.account}")
class AccountSync(BaseJob[Account]):
    """A no-op one at a time per account (`concurrency_key`): the reads part of `--scale`
    times the claim past a backlog of one account whose slot is taken."""

    def perform(self, args: Account) -> None:
        return None
