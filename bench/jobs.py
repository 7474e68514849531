"""The jobs the benchmark runs: no-ops, so what is measured is the queue itself."""

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
