"""The no-op job as an rq job: a plain function, imported by the rq workers by its dotted path."""

from __future__ import annotations


def noop() -> None:
    return None
