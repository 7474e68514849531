"""Rate limits as users write them: `"10/s"`, `"600/m"`, `"100/h"`, `"5/2s"` or
`(10, timedelta(seconds=1))`, each read as (how many starts, in what window).

    >>> parse("10/s")
    (10, datetime.timedelta(seconds=1))
    >>> parse("600/m")
    (600, datetime.timedelta(seconds=60))
    >>> parse((5, 2.5))
    (5, datetime.timedelta(seconds=2, microseconds=500000))
    >>> parse("ten per second")
    Traceback (most recent call last):
    ...
    ValueError: a rate limit is like '10/s', '600/m', '100/h' or (10, timedelta(seconds=1)), got 'ten per second'
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
          "d": 86400, "day": 86400}
_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*$")
_SAYS = "a rate limit is like '10/s', '600/m', '100/h' or (10, timedelta(seconds=1))"


def parse(value: Any) -> tuple[int, timedelta]:
    """(starts, window) from a string or a pair; ValueError saying the accepted forms."""
    if isinstance(value, str):
        found = _FORM.match(value.lower())
        if found is None or found.group(3) not in _UNITS:
            raise ValueError(f"{_SAYS}, got {value!r}")
        count, times, unit = int(found.group(1)), float(found.group(2) or 1), _UNITS[found.group(3)]
        return _checked(count, timedelta(seconds=times * unit), value)
    if isinstance(value, tuple | list) and len(value) == 2:
        count, window = value
        if isinstance(window, int | float) and not isinstance(window, bool) and math.isfinite(window):
            window = timedelta(seconds=window)
        if isinstance(count, int) and not isinstance(count, bool) and isinstance(window, timedelta):
            return _checked(count, window, value)
    raise ValueError(f"{_SAYS}, got {value!r}")


def _checked(count: int, window: timedelta, given: Any) -> tuple[int, timedelta]:
    if count < 1 or window <= timedelta(0):
        raise ValueError(f"a rate limit needs at least 1 start in a window longer than 0, got {given!r}")
    return count, window


def parse_option(value: Any) -> Any:
    """`parse` for pydantic: None stays None; a wrong value's ValueError words the refusal."""
    return None if value is None else parse(value)


def text(limit: tuple[int, timedelta]) -> str:
    """A limit as users write it, for listings.

        >>> text((10, timedelta(seconds=1))), text((600, timedelta(minutes=1))), text((5, timedelta(seconds=2.5)))
        ('10/s', '600/m', '5/2.5s')
    """
    count, window = limit
    seconds = window.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            times = int(seconds // size)
            return f"{count}/{unit}" if times == 1 else f"{count}/{times}{unit}"
    return f"{count}/s" if seconds == 1 else f"{count}/{seconds:g}s"


def by_queue(*sources: Mapping[str, Any]) -> dict[str, list[tuple[int, timedelta]]]:
    """Every distinct limit of each queue among `sources` (a `queue_rate_limits` setting, the
    limits a live worker registered), in either form, the strictest first. Workers started
    with different limits each keep their own, so a queue can have several.

        >>> by_queue({"mail": "600/m"}, {"mail": (10, 1.0), "sms": "1/h"}, {"mail": "10/s"})
        {'mail': [(10, datetime.timedelta(seconds=1)), (600, datetime.timedelta(seconds=60))], \
'sms': [(1, datetime.timedelta(seconds=3600))]}
    """
    found: dict[str, set[tuple[int, timedelta]]] = {}
    for source in sources:
        for queue, limit in source.items():
            found.setdefault(queue, set()).add(parse(limit))
    # Fewer starts a second first; of two as fast, the shorter window (a smaller burst).
    return {queue: sorted(found[queue], key=lambda lim: (lim[0] / lim[1].total_seconds(), lim[1]))
            for queue in sorted(found)}


MAX_KEY = 255
"""The longest key `activejob_rate_starts` holds; longer per-key keys are shortened to a digest."""


def type_key(name: str, rate_key: str | None = None) -> str:
    """The key a job type's starts are counted under: `type:<name>`, or, for a type limited per
    key, `type:<name>:<rate_key>` (its digest when that is too long for the column).

        >>> type_key("send_email"), type_key("sync_customer", "42")
        ('type:send_email', 'type:sync_customer:42')
    """
    if rate_key is None:
        return f"type:{name}"
    key = f"type:{name}:{rate_key}"
    if len(key) <= MAX_KEY:
        return key
    return f"type:{name}:#{hashlib.sha256(rate_key.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


def queue_key(queue: str) -> str:
    """The key a queue's starts are counted under.

        >>> queue_key("mail")
        'queue:mail'
    """
    return f"queue:{queue}"
