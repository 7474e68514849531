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
    # What a duplicate of a held `unique_key` does ('skip', 'replace', 'debounce', 'raise'),
    # and how long the key is held: 'finished' (None), 'started', or 'time' until unique_expires_at.
    unique_mode: str = "skip"
    unique_until: str | None = None
    unique_expires_at: datetime | None = None
    batch_id: int | None = None
    depends_on: tuple[int, ...] = ()  # job ids it waits for (status 'waiting' until they complete)
    run_on_failure: bool = False  # run even when a dependency failed or was cancelled
    rate_key: str | None = None  # the key a per-key rate limit counts its starts under
    args_version: int | None = None  # the job type's schema version (None: 1)
    meta: str | None = None  # JSON: what else travels with the job (trace context, per-call timeout)

    @property
    def plain(self) -> bool:
        """Nothing beyond the enqueue fast paths: no unique key, no dependencies."""
        return self.unique_key is None and not self.depends_on
