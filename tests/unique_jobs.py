"""Job types for the unique-key tests across worker processes
(`activejob worker --import tests.unique_jobs`). Every name starts with `uq_`.

`uq_turn` holds the key `turn:<key>` while it runs (until it finishes, the default) and
proves it is alone: it creates a marker file per key with O_EXCL, which fails if another
holder of the key is running anywhere on this machine. `uq_feeder` enqueues turns of every
key in a tight loop, as several feeders do at once in several processes. Each run appends
one line to a log (O_APPEND: lines from many processes never interleave).
"""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from activejob import BaseJob, job


class Turn(BaseModel):
    key: int
    dir: str  # where the log and the per-key markers are


class Feed(BaseModel):
    keys: int
    dir: str
    seconds: float


def log(directory: str, line: str) -> None:
    fd = os.open(os.path.join(directory, "runs.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


@job("uq_turn", schema=Turn, unique_key=lambda args: f"turn:{args.key}")
class TakeTurn(BaseJob[Turn]):
    def perform(self, args: Turn) -> None:
        marker = os.path.join(args.dir, f"holding-{args.key}")
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            log(args.dir, f"overlap {args.key} {self.job_id}")
            return
        log(args.dir, f"run {args.key} {self.job_id} {os.getpid()}")
        time.sleep(0.01)
        # A duplicate enqueued while the job runs gets this very job back: it holds the key.
        again = TakeTurn.perform_later(key=args.key, dir=args.dir)
        if again.id != self.job_id:
            log(args.dir, f"second {args.key} {again.id}")
        os.remove(marker)  # before the finish commits, so before the key is free again


@job("uq_feeder", schema=Feed)
class Feeder(BaseJob[Feed]):
    def perform(self, args: Feed) -> int:
        sent = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            for key in range(args.keys):
                TakeTurn.perform_later(key=key, dir=args.dir)
                sent += 1
        log(args.dir, f"fed {sent} {os.getpid()}")
        return sent
