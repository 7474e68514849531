"""The web layer's one JSON codec: everything the REST API, the WebSocket and the pages
send goes through `dumps`, everything they read through `loads`.

Job data may hold NaN or ±Infinity (a job's `self.log(value=float("nan"))`): Python writes
them as bare `NaN`, which is not JSON and which no browser or JSON client can parse, and
Starlette's own JSONResponse refuses them with a 500. Here they become `null`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse as _StarletteJSON

MAX_DEPTH = 64  # our messages and bodies are flat objects; far deeper input is an attack


def finite(value: Any) -> Any:
    """`value` with every NaN and ±Infinity replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, *, pretty: bool = False) -> str:
    """Strict JSON text (never NaN); values JSON has no type for are written as strings."""
    # On the wire, ASCII only: a lone surrogate a client sent (an owner it subscribes to)
    # would make UTF-8 encoding fail; escaped, it is valid JSON.
    options: dict[str, Any] = {"indent": 2, "ensure_ascii": False} if pretty else {"separators": (",", ":")}
    try:
        return json.dumps(value, allow_nan=False, default=str, **options)
    except ValueError:  # rare: pay for the walk only when a non-finite float is really there
        return json.dumps(finite(value), allow_nan=False, default=str, **options)


def too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays/objects in `text` nest deeper than `limit`, found without recursing
    (json.loads recurses once per level and raises RecursionError, not ValueError)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def loads(text: str | bytes) -> Any:
    """Parse JSON from a client; ValueError (never RecursionError) for anything unusable."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if too_deep(text):
        raise ValueError(f"JSON nested more than {MAX_DEPTH} levels deep")
    return json.loads(text)


class JSONResponse(_StarletteJSON):
    """Starlette's JSONResponse, written by `dumps`."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")
