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

import math
import re
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
