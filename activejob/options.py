"""How option values are checked: pydantic types that say in words what they expect, and the
reading of pydantic's `ValidationError` as sentences that name the option and the value.

    Lease = Annotated[float, Strict(), Gt(0), Says("must be a positive number of seconds")]

A field of that type refused by pydantic reads `lease must be a positive number of seconds,
got -1`. A validator with more to say raises `refuse("queue contains a NUL character ...")`;
one that raises ValueError gets its field's `Says` wording, like pydantic's own checks.
`@job(...)` (`definition.py`) and the queue's `Settings` (`config.py`) are checked this way.
"""

from __future__ import annotations

import functools
import itertools
import typing
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

_OURS = "activejob"
"""The error type of `refuse`: a sentence of our own, taken as it is."""


@dataclass(frozen=True, slots=True)
class Says:
    """What a field expects, in words: `Annotated[int, Strict(), Ge(1), Says("must be a whole number >= 1")]`.

    Put it at the top of the field's annotation (pydantic keeps it there, in the field's
    metadata; it takes no part in the validation itself).
    """

    expected: str


def refuse(sentence: str) -> NoReturn:
    """Refuse the value being checked with a whole sentence, which names the option:
    `refuse(f"queue {problem}")`. Raised inside a validator, pydantic collects it."""
    # The sentence goes in through the context: a template's braces would be read as fields.
    raise PydanticCustomError(_OURS, "{sentence}", {"sentence": sentence})


def show(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut short: a refused value may be megabytes long.

    >>> show("x" * 100, limit=10)
    "'xxxxxxxxx... (102 characters)"
    """
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        text = f"<{type(value).__name__} too large to show>"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def unknown_names(error: ValidationError) -> list[str]:
    """The names given that the model has no field for (`extra="forbid"`), sorted."""
    return sorted(str(e["loc"][0]) for e in error.errors(include_url=False) if e["type"] == "extra_forbidden")


def problems(error: ValidationError, model: type[BaseModel]) -> list[tuple[str, str]]:
    """`(option, sentence)` for each refused value, in the order of the model's fields; the
    option is "" for a check of several options together. Unknown names are left out
    (`unknown_names`)."""
    found: dict[tuple[str, str], None] = {}  # ordered, without repeats
    for item in error.errors(include_url=False):
        if item["type"] == "extra_forbidden":
            continue
        option = str(item["loc"][0]) if item["loc"] else ""
        if item["type"] == _OURS:
            sentence = item["msg"]
        else:
            expected = _wording(model).get(option)
            sentence = (f"{option} {expected}, got {show(item['input'])}" if expected
                        else f"{option}: {item['msg']}, got {show(item['input'])}")
        found[option, sentence] = None
    return list(found)


@functools.cache
def _wording(model: type[BaseModel]) -> dict[str, str]:
    # Keyed as pydantic names the option in an error: by its alias where it has one. An
    # optional field (`Priority | None`) keeps its Says inside, on the annotated type.
    wording = {}
    for name, info in model.model_fields.items():
        inner = [getattr(arg, "__metadata__", ()) for arg in typing.get_args(info.annotation)]
        says = next((m for m in itertools.chain(info.metadata, *inner) if isinstance(m, Says)), None)
        if says is not None:
            wording[info.alias or name] = says.expected
    return wording
