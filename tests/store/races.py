"""Making another process's commit happen between two statements of a store verb (PostgreSQL
lets one commit there; SQLite's single writer does not)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from activejob.store import Store

from .contract import Jobs


@contextmanager
def before_statement(store: Store, starts: str, action: Callable[[], None]) -> Iterator[list[str]]:
    """Run `action` (once) just before the store sends its first statement starting with `starts`."""
    seen: list[str] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not seen and statement.lstrip().upper().startswith(starts):
            seen.append(statement)
            action()

    event.listen(store.engine, "before_cursor_execute", hook)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", hook)


def elsewhere(store: Store, statement: str, **params: Any) -> Callable[[], None]:
    """A statement committed by another connection, as another process would."""
    def run() -> None:
        engine = create_engine(store.engine.url)
        try:
            with engine.begin() as c:
                c.execute(text(statement), params)
        finally:
            engine.dispose()
    return run


def only_pg(jobs: Jobs) -> None:
    if jobs.sqlite:
        pytest.skip("SQLite has one writer at a time: nothing commits inside an enqueue")
