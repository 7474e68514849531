"""What `perform_later` hands to the store: one job, validated and encoded, and what the
columns it is written to can hold (checked before anything is written).

It sits below both the definitions (which build requests) and the store (which writes
them), so neither has to import the other: `activejob.store.NewJob` is this same class
under the store's older name.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LENGTH: dict[str, int] = {"name": 200, "queue": 200, "owner": 200, "unique_key": 255, "concurrency_key": 255}
"""How many characters each text column set at enqueue holds (VARCHAR(n) counts characters).
The tables are declared with these (`models.py`), and enqueue refuses longer values before
anything is written."""


# Checked before anything is written, so a bad value is a clear error naming the job and
# the option, never a driver error from inside the transaction (and never a value SQLite
# keeps but PostgreSQL would refuse, which would make a database switch fail later).

PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1
"""Priorities fit the 32-bit INTEGER column (PostgreSQL refuses more; SQLite would keep it)."""

PRIORITY_RANGE = f"must be an integer from {PRIORITY_MIN} to {PRIORITY_MAX} (a 32-bit column)"
"""How a refused priority is described, by `@job` and by `Job.set`."""

INTEGER_MAX = 2**31 - 1
"""The largest value of a 32-bit INTEGER column (max_retries)."""

BIGINT_MAX = 2**63 - 1
"""The largest job id (a BIGINT)."""


def text_problem(value: str, column: str) -> str | None:
    """Why `value` cannot be stored in `column` on every supported database, or None.

    >>> text_problem("nul\\x00", "queue")
    'contains a NUL character (at position 3), which PostgreSQL cannot store'
    """
    limit = MAX_LENGTH.get(column)  # (a column not listed is TEXT: no limit on length)
    if limit is not None and len(value) > limit:
        return f"is {len(value)} characters long; its column holds at most {limit}"
    if "\x00" in value:
        return f"contains a NUL character (at position {value.index(chr(0))}), which PostgreSQL cannot store"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            # Typically a name decoded with errors="surrogateescape" (os.listdir, sys.argv).
            return (f"contains a lone surrogate ({value[error.start]!r} at position {error.start}), "
                    "which has no UTF-8 form")
    return None


def whole_number(value: Any) -> int | None:
    """`value` as an int if it is an integer (numpy's too); None for bools, floats and strings,
    which `int()` would quietly round or parse."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


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
        """Nothing beyond the bulk enqueue's fast path: no unique key, no dependencies (a job
        enqueued alone takes its fast path with a unique key too)."""
        return self.unique_key is None and not self.depends_on
