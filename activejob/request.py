"""What `perform_later` hands to the store: one job, validated and encoded, and the sizes of
the text columns it is written to.

It sits below both the definitions (which build requests) and the store (which writes
them), so neither has to import the other: `activejob.store.NewJob` is this same class
under the store's older name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

MAX_LENGTH: dict[str, int] = {"name": 200, "queue": 200, "owner": 200, "unique_key": 255, "concurrency_key": 255}
"""How many characters each text column set at enqueue holds (VARCHAR(n) counts characters).
The tables are declared with these (`models.py`), and enqueue refuses longer values before
anything is written."""


@dataclass(slots=True)
class EnqueueRequest:
    """One job, validated and encoded, ready to be written (`ConfiguredJob.request()` makes it)."""

    name: str
    args: str  # the arguments as JSON
    queue: str
    priority: int
    run_at: datetime
    max_retries: int
    owner: str | None = None
    parent_id: int | None = None
    unique_key: str | None = None
    concurrency_key: str | None = None  # jobs of a type with a per-key concurrency limit
