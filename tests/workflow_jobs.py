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


class Keyed(BaseModel):
    key: str
    tag: str
    log: str
    seconds: float = 0.0


@job("wf_keyed", schema=Keyed, max_retries=0, concurrency_limit=2, concurrency_key=lambda args: args.key)
class KeyedRun(BaseJob[Keyed]):
    """At most two at once per key, across every worker."""

    def perform(self, args: Keyed) -> None:
        append(args.log, f"start {args.key} {args.tag} {time.time():.6f}\n")
        time.sleep(args.seconds)
        append(args.log, f"end {args.key} {args.tag} {time.time():.6f}\n")


@job("wf_unique_follow", schema=Keyed, max_retries=0, unique_key=lambda args: f"follow:{args.key}")
class UniqueFollow(BaseJob[Keyed]):
    """One per key until it has finished (unique_until="finished", the default)."""

    def perform(self, args: Keyed) -> None:
        append(args.log, f"start {args.key} {args.tag} {time.time():.6f}\n")
        time.sleep(args.seconds)
        append(args.log, f"end {args.key} {args.tag} {time.time():.6f}\n")


@job("wf_spawner", schema=Keyed, max_retries=0)
class Spawner(BaseJob[Keyed]):
    """Enqueues a follow-up for its key from whichever worker runs it: duplicates race."""

    def perform(self, args: Keyed) -> None:
        UniqueFollow.perform_later(key=args.key, tag=args.tag, log=args.log, seconds=args.seconds)


def most_at_once(path: str) -> dict[str, int]:
    """Per key, the most runs between their start and end lines at any moment."""
    events = sorted((float(at), 1 if kind == "start" else -1, key)
                    for kind, key, _tag, at in lines(path) if kind in ("start", "end"))
    now: dict[str, int] = {}
    most: dict[str, int] = {}
    for _at, step, key in events:
        now[key] = now.get(key, 0) + step
        most[key] = max(most.get(key, 0), now[key])
    return most
