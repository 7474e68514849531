"""What `@job` reads of the class it decorates: whether workers can call its `perform`.

A worker calls `perform(self, args)` with the job's arguments as one model; a `perform` that
needs anything else would fail at every attempt, so `@job` refuses it when the class is
defined, and lets a plain `perform(self)` stand for a job without arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .enqueuing import is_async
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .definition import BaseJob


def check_perform(cls: type[BaseJob[Any]], name: str, schema: type[BaseModel]) -> None:
    """Refuse, when the job is defined, a `perform` no worker could call; let one that takes
    no arguments (`def perform(self)`) stand for a job without any, as in Rails."""
    try:
        signature = inspect.signature(cls.perform)
    except (TypeError, ValueError):  # no signature to read (a C function): left to run
        return
    # Asked as a worker asks it: perform(self, args), whatever the signature's shape
    # (a decorator's (*args, **kwargs) takes anything).
    try:
        signature.bind(None, None)
        return
    except TypeError as error:
        reason = str(error)
    call = f"{cls.__name__}.perform{signature.replace(return_annotation=inspect.Signature.empty)}"
    try:
        signature.bind(None)
    except TypeError:
        raise ConfigurationError(
            f"{name}: {call} cannot be called as perform(self, args) ({reason}): perform gets the job's "
            f"arguments as one {schema.__name__} and reads args.<field>") from None
    if schema.model_fields:
        raise ConfigurationError(
            f"{name}: {call} takes no arguments, but the job's schema {schema.__name__} has field(s) "
            f"{', '.join(schema.model_fields)}: define perform(self, args: {schema.__name__})")
    takes_nothing: Callable[..., Any] = cls.perform
    if is_async(takes_nothing):
        @functools.wraps(takes_nothing)
        async def perform_async(self: Any, args: Any = None) -> Any:
            return await takes_nothing(self)
        cls.perform = perform_async  # type: ignore[method-assign]
    else:
        @functools.wraps(takes_nothing)
        def perform(self: Any, args: Any = None) -> Any:
            return takes_nothing(self)
        cls.perform = perform  # type: ignore[method-assign]
