"""Job types for worker subprocesses (`activejob worker --import tests.jobs_for_workers`).

Every name starts with `wk_`. Jobs that block wait for a file to appear, so a test
decides when they end; the job that kills its worker only does so in a subprocess
started by the tests (AJ_TEST_WORKER=1), never in the test process itself.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel

from activejob import BaseJob, job


class Sleep(BaseModel):
    seconds: float


class Block(BaseModel):
    release: str  # a file path: the job ends once it exists
    limit: float = 30.0
    checkpoint: int | None = None


class Nothing(BaseModel):
    n: int = 0


def _released(path: str) -> bool:
    return Path(path).exists()


@job("wk_sleep", schema=Sleep, max_retries=0)
class WkSleep(BaseJob[Sleep]):
    async def perform(self, args: Sleep) -> dict[str, Any]:
        await anyio.sleep(args.seconds)
        return {"pid": os.getpid()}


@job("wk_block", schema=Block, max_retries=3, backoff=0)
class WkBlock(BaseJob[Block]):
    """Runs until its release file exists; returns the pid and attempt that finished it."""

    async def perform(self, args: Block) -> dict[str, Any]:
        if args.checkpoint is not None and self.checkpoint_data is None:
            self.checkpoint({"offset": args.checkpoint})
        deadline = time.monotonic() + args.limit
        while not _released(args.release) and time.monotonic() < deadline:
            await anyio.sleep(0.02)
        return {"pid": os.getpid(), "attempt": self.attempt, "checkpoint": self.checkpoint_data}


@job("wk_block_sync", schema=Block, max_retries=3, backoff=0)
class WkBlockSync(BaseJob[Block]):
    """A plain `def` job that checks `self.cancelled` while it waits."""

    def perform(self, args: Block) -> dict[str, Any]:
        deadline = time.monotonic() + args.limit
        while not _released(args.release) and time.monotonic() < deadline:
            self.check_cancelled()
            time.sleep(0.02)
        return {"pid": os.getpid(), "attempt": self.attempt}


@job("wk_quick", schema=Nothing, max_retries=0)
class WkQuick(BaseJob[Nothing]):
    async def perform(self, args: Nothing) -> dict[str, Any]:
        return {"n": args.n, "pid": os.getpid()}


@job("wk_kill_worker", schema=Nothing, max_retries=1, backoff=0)
class WkKillWorker(BaseJob[Nothing]):
    """Kills the worker process running it, every time (only in test subprocesses)."""

    def perform(self, args: Nothing) -> None:
        if os.environ.get("AJ_TEST_WORKER") != "1":
            raise RuntimeError("wk_kill_worker only kills worker subprocesses started by the tests")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)


class Raise(BaseModel):
    kind: str  # exit | interrupt | base | cancelled


class Boom(BaseException):
    """A BaseException of the job's own."""


def _raise(kind: str) -> None:
    import asyncio

    errors: dict[str, BaseException] = {
        "exit": SystemExit(3), "interrupt": KeyboardInterrupt(), "base": Boom("boom"),
        "cancelled": asyncio.CancelledError("the job's own"),
    }
    raise errors[kind]


@job("wk_raise_base", schema=Raise, max_retries=0)
class WkRaiseBase(BaseJob[Raise]):
    async def perform(self, args: Raise) -> None:
        _raise(args.kind)


@job("wk_raise_base_sync", schema=Raise, max_retries=0)
class WkRaiseBaseSync(BaseJob[Raise]):
    def perform(self, args: Raise) -> None:
        _raise(args.kind)


@job("wk_ignore_cancel_sync", schema=Block, max_retries=3, backoff=0)
class WkIgnoreCancelSync(BaseJob[Block]):
    """A plain `def` job that never looks at `self.cancelled`."""

    def perform(self, args: Block) -> None:
        deadline = time.monotonic() + args.limit
        while not _released(args.release) and time.monotonic() < deadline:
            time.sleep(0.02)


@job("wk_swallow_cancel", schema=Block, max_retries=3, backoff=0)
class WkSwallowCancel(BaseJob[Block]):
    """An async job that catches its cancellation and carries on."""

    async def perform(self, args: Block) -> None:
        import asyncio

        deadline = time.monotonic() + args.limit
        while not _released(args.release) and time.monotonic() < deadline:
            try:  # noqa: SIM105 - written out: the point is a job that swallows it
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:
                pass
