"""Job types for the web tests, importable by worker subprocesses (`--import tests.web.jobs`)."""

from __future__ import annotations

import time
from typing import Any

import anyio
from pydantic import BaseModel

from activejob import BaseJob, job


class StepsArgs(BaseModel):
    steps: int = 5
    delay: float = 0.1
    dataset: str = "d1"


PHASES = ("download", "process", "upload")


@job("web_steps", schema=StepsArgs, max_retries=0, label="Import rows", phases=PHASES,
     resource_link=lambda args: f"/datasets/{args['dataset']}")
class Steps(BaseJob[StepsArgs]):
    """Imports rows in steps, reporting "X of Y" progress through three phases."""

    async def perform(self, args: StepsArgs) -> dict[str, Any]:
        for i in range(args.steps):
            phase = PHASES[min(len(PHASES) - 1, i * len(PHASES) // max(args.steps, 1))]
            self.progress_count(i + 1, args.steps, message=f"batch {i + 1}", phase=phase)
            if i == 0:
                self.log("connected", dataset=args.dataset)
            await anyio.sleep(args.delay)
        return {"rows": args.steps * 100}


class QuickArgs(BaseModel):
    value: Any = None


@job("web_quick", schema=QuickArgs, max_retries=0, label="Quick job")
class Quick(BaseJob[QuickArgs]):
    def perform(self, args: QuickArgs) -> Any:
        return {"echo": args.value}


class FailArgs(BaseModel):
    message: str = "boom"


@job("web_fail", schema=FailArgs, max_retries=0, label="Always fails")
class Fail(BaseJob[FailArgs]):
    def perform(self, args: FailArgs) -> None:
        raise RuntimeError(args.message)


class WaitArgs(BaseModel):
    seconds: float = 60.0


@job("web_wait", schema=WaitArgs, max_retries=0, label="Wait until cancelled")
class Wait(BaseJob[WaitArgs]):
    async def perform(self, args: WaitArgs) -> str:
        ticks = int(args.seconds / 0.1)
        for i in range(ticks):
            self.progress(i / ticks, message="waiting")
            await anyio.sleep(0.1)
        return "done"


class ParentArgs(BaseModel):
    child_queue: str = "held"
    linger: float = 2.0


@job("web_parent", schema=ParentArgs, max_retries=0, label="Waits for its child")
class Parent(BaseJob[ParentArgs]):
    def perform(self, args: ParentArgs) -> str:
        if not self.children():
            Quick.set(parent=self, queue=args.child_queue).perform_later(value="child")
            # Apart from the child's events: only the parent's own `waiting` event comes later.
            time.sleep(args.linger)
            self.wait_for_children()
        return "done"
