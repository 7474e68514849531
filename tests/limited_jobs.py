"""A job type with a concurrency limit, for worker subprocesses (`--import tests.limited_jobs`).

Kept out of the modules every test imports: a worker that knows a limited type claims
through the limited path, and the rest of the suite should exercise the fast one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

from activejob import BaseJob, job


class Record(BaseModel):
    n: int
    log: str  # the file each execution appends its start and end lines to
    seconds: float = 0.0


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@job("cl_limited", schema=Record, max_retries=0, concurrency_limit=2)
class LimitedRun(BaseJob[Record]):
    """Appends "start <time>" and "end <time>" lines, so a test can see how many overlapped."""

    def perform(self, args: Record) -> None:
        _append(args.log, f"start {time.time():.6f} {args.n}\n")
        time.sleep(args.seconds)
        _append(args.log, f"end {time.time():.6f} {args.n}\n")


def most_at_once(path: str) -> int:
    """The most jobs of a log of start/end lines that were running at one moment."""
    marks = sorted((float(t), 1 if kind == "start" else -1)
                   for kind, t, _n in (line.split() for line in Path(path).read_text().splitlines()))
    running = peak = 0
    for _t, step in marks:  # at a tie an end sorts first: it freed its slot before the next started
        running += step
        peak = max(peak, running)
    return peak
