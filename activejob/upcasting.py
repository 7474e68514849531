"""Arguments that outlive a deploy: bring a job's stored arguments up to its type's version.

A job type at `version=3` with `upcasters={1: to_v2, 2: to_v3}` runs a job stored at version
1 with `to_v3(to_v2(args))`: each upcaster takes the arguments of its version (a dict) and
returns those of the next one.

    >>> upcast("greet", {"name": "Ada"}, stored=1, version=3,
    ...        upcasters={1: lambda a: {**a, "locale": "en"}, 2: lambda a: {**a, "formal": False}})
    {'name': 'Ada', 'locale': 'en', 'formal': False}
    >>> upcast("greet", {"name": "Ada"}, stored=1, version=3, upcasters={2: lambda a: a})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    activejob.upcasting.ArgumentsVersionError: greet: stored arguments are version 1, ... no upcaster leads from 1 ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import JobArgumentsError

Upcasters = Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]]


class ArgumentsVersionError(JobArgumentsError):
    """A job's stored arguments cannot be brought to the code's version: there is no upcaster
    from the stored version (or the job was stored by newer code), or an upcaster failed. The
    job fails at once: no retry can fix it. `stored` and `version` are the two versions."""

    def __init__(self, job: str, message: str, *, stored: int, version: int) -> None:
        self.stored = stored
        self.version = version
        super().__init__(job, message)


def problem(version: int, upcasters: Upcasters | None) -> str | None:
    """Why `@job(version=..., upcasters=...)` cannot be used, or None: every key is a whole
    number from 1 to below `version`, every value a function."""
    if not upcasters:
        return None
    for key, fn in upcasters.items():
        if isinstance(key, bool) or not isinstance(key, int) or not 1 <= key < version:
            return (f"upcasters keys are the older versions they upcast from, whole numbers from 1 to "
                    f"{version - 1} (below version={version}), got {key!r}")
        if not callable(fn):
            return f"upcasters[{key}] must be a function of the arguments dict, got {fn!r}"
    return None


def upcast(job: str, args: Any, *, stored: int | None, version: int, upcasters: Upcasters | None) -> Any:
    """`args` (as stored at version `stored`, None meaning 1) brought to `version`, or an
    `ArgumentsVersionError` naming the job and both versions."""
    first = at = 1 if stored is None else stored
    if at == version:
        return args
    if at > version:
        raise ArgumentsVersionError(
            job, f"stored arguments are version {at}, this code is version {version}: they were written by newer "
                 "code; run this job with that code (arguments are never downcast)", stored=at, version=version)
    steps = upcasters or {}
    while at < version:
        step = steps.get(at)
        if step is None:
            given = f" (upcasters are given for {', '.join(map(str, sorted(steps)))})" if steps else ""
            raise ArgumentsVersionError(
                job, f"stored arguments are version {first}, this code is version {version}, and no upcaster "
                     f"leads from {at}{given}", stored=first, version=version)
        try:
            args = step(dict(args) if isinstance(args, dict) else args)
        except Exception as error:
            raise ArgumentsVersionError(job, f"the upcaster from version {at} raised {type(error).__name__}: {error}",
                                        stored=first, version=version) from error
        at += 1
    return args


def current_args(info: Any, job_types: Mapping[str, Any]) -> Any:
    """A stored job's arguments as today's code sees them (`info` is a `JobInfo`, `job_types`
    the registry): upcast when its type is registered here at a newer version; as stored
    otherwise, or when they cannot be upcast (a view shows what is there rather than an error).

        current_args(queue.get_job(job_id), activejob.registry)   # {"name": "Ada", "locale": "en"}
    """
    cls = job_types.get(info.name)
    if cls is None:
        return info.args
    opts = cls.options
    stored = getattr(info, "args_version", None) or 1
    if stored == opts.version:
        return info.args
    try:
        return upcast(opts.name, info.args, stored=stored, version=opts.version, upcasters=opts.upcasters)
    except ArgumentsVersionError:
        return info.args
