"""Job types for the multi-process workflow tests (`activejob worker --import tests.workflow_jobs`).

Every name starts with `wf_`. Each run appends a line to the file named in its arguments
(O_APPEND: lines from many processes never interleave), so the tests count runs and order
without trusting the storage they test.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pydantic import BaseModel

from activejob import BaseJob, job


class Mark(BaseModel):
    tag: str
    log: str
    seconds: float = 0.0


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@job("wf_mark", schema=Mark, max_retries=0)
class MarkRun(BaseJob[Mark]):
    def perform(self, args: Mark) -> None:
        append(args.log, f"start {args.tag} {time.time():.6f}\n")
        if args.seconds:
            time.sleep(args.seconds)
        append(args.log, f"end {args.tag} {time.time():.6f}\n")


@job("wf_batch_done", schema=Mark)
class BatchDone(BaseJob[Mark]):
    def perform(self, args: Any) -> None:
        batch = self.batch
        append(args.log, f"callback {batch.id} {batch.total} {batch.completed}\n")


def lines(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.split() for line in f if line.strip()]
    except FileNotFoundError:
        return []
