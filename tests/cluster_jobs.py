"""Job types for the multi-process tests (`activejob worker --import tests.cluster_jobs`).

Every name starts with `cl_`. A job records that it ran by appending one line to the
file named in its arguments (O_APPEND: lines from many processes never interleave), so
the tests count executions without trusting the storage they are testing.
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from activejob import BaseJob, job


class Record(BaseModel):
    n: int
    log: str  # the file each execution appends "n pid" to
    seconds: float = 0.0  # how long the job takes (a sync job sleeps in its thread)


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@job("cl_record", schema=Record, max_retries=5, backoff=0.1)
class RecordRun(BaseJob[Record]):
    def perform(self, args: Record) -> None:
        if args.seconds:
            time.sleep(args.seconds)
        _append(args.log, f"{args.n} {os.getpid()}\n")


def executions(path: str) -> dict[int, int]:
    """How many times each job number ran, from the log file."""
    counts: dict[int, int] = {}
    if not os.path.exists(path):
        return counts
    with open(path) as f:
        for line in f:
            n = int(line.split()[0])
            counts[n] = counts.get(n, 0) + 1
    return counts
