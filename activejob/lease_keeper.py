"""Heartbeats: a worker keeps the leases of its running jobs, and hears of cancel requests
and of leases it lost."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from . import clock

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger("activejob.worker")


class LeaseKeeper:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.settings = runner.settings
        self._last_ok = clock.monotonic()
        self._soon: anyio.Event | None = None

    def beat_soon(self) -> None:
        """Beat now rather than at the next interval (on the worker's loop): a cancel made in
        this process may have marked jobs running here (a parent's descendants), which the
        beat stops."""
        if self._soon is not None:
            self._soon.set()

    async def beat(self) -> None:
        """One heartbeat: extend the leases, stop what was lost or cancelled."""
        runner = self.runner
        tokens = {job_id: e.job.lease_token for job_id, e in runner.running.items()}
        try:
            beat = await runner.store.heartbeat(runner.worker_info(), tokens, clock.now())
        except Exception as error:
            runner.noted(error)
            log.warning("heartbeat failed (%s)", error)
            if clock.monotonic() - self._last_ok > self.settings.lease:
                # Our leases have expired by now and another worker may hold these
                # jobs: stop rather than run them twice.
                for job_id in list(runner.running):
                    runner.stop_job(job_id, "lease_lost")
            return
        self._last_ok = clock.monotonic()
        for job_id in beat.lost:
            runner.stop_job(job_id, "lease_lost")
        for job_id in beat.cancel:
            runner.stop_job(job_id, "cancel")

    async def run(self) -> None:
        assert self.settings.heartbeat_interval is not None
        self._last_ok = clock.monotonic()
        while True:
            self._soon = anyio.Event()
            with anyio.move_on_after(self.settings.heartbeat_interval):
                await self._soon.wait()
            await self.beat()
