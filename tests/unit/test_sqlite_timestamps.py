"""The hot paths write SQLite timestamps as text themselves (`store.sql.sqlite_ts`); the
general path lets SQLAlchemy do it. Both must store the same text, or ordering by run_at
and comparing with "now" in SQL would go wrong between jobs written either way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from activejob.models import UTCDateTime
from activejob.store.sql import sqlite_ts

pytestmark = pytest.mark.timeout(5)

DIALECT = sqlite.dialect()
SQLALCHEMY_TEXT = sqlite.DATETIME().bind_processor(DIALECT)


def stored_by_sqlalchemy(value: datetime) -> str:
    text = SQLALCHEMY_TEXT(UTCDateTime().process_bind_param(value, DIALECT))
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("value", [
    datetime(2026, 12, 5, 11, 30, 1, 123456, tzinfo=UTC),
    datetime(2026, 12, 5, 11, 30, 1, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 12, 5, 13, 30, 1, 5, tzinfo=timezone(timedelta(hours=2))),  # converted to UTC
    datetime(2026, 12, 5, 11, 30, 1, 999999),  # naive: taken as UTC
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
])
def test_hot_path_timestamps_are_the_text_sqlalchemy_stores(value: datetime) -> None:
    assert sqlite_ts(value) == stored_by_sqlalchemy(value)


def test_timestamps_sort_as_text_in_time_order() -> None:
    base = datetime(2026, 12, 5, tzinfo=UTC)
    times = [base + timedelta(microseconds=n) for n in (0, 1, 10, 999_999, 1_000_000)]
    assert sorted(map(sqlite_ts, times)) == [sqlite_ts(t) for t in times]
