"""The jobs the benchmark runs: no-ops, so what is measured is the queue itself.

Every benchmark worker imports this module, so no job here has a concurrency or rate limit
(those live in bench/limited_jobs.py): a worker that runs a limited type claims by the
general path while a limited job may be due, and the drains would measure that.
"""

from __future__ import annotations

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
